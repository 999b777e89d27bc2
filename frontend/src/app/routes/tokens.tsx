export { TokensPage as Component } from '@/features/tokens/components/TokensPage';
