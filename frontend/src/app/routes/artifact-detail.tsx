export { ArtifactDetailPage as Component } from '@/features/artifact-detail/components/ArtifactDetailPage';
