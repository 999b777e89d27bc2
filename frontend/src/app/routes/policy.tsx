export { PolicyPage as Component } from '@/features/policy/components/PolicyPage';
