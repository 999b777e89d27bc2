export { ArtifactsPage as Component } from '@/features/artifacts/components/ArtifactsPage';
