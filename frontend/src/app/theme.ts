import { createTheme, type PaletteMode } from '@mui/material/styles';

export function buildTheme(mode: PaletteMode) {
  return createTheme({
    palette: {
      mode,
      // Text on filled chips and buttons picks black or white at WCAG AA (4.5:1).
      contrastThreshold: 4.5,
      primary: { main: mode === 'light' ? '#1e4fa3' : '#8ab4f8' },
      secondary: { main: mode === 'light' ? '#6a1b9a' : '#ce93d8' },
      ...(mode === 'light'
        ? { warning: { main: '#a14a00' }, info: { main: '#01579b' }, success: { main: '#1b5e20' }, error: { main: '#c62828' } }
        : { warning: { main: '#ffb74d' }, info: { main: '#81d4fa' }, success: { main: '#81c784' }, error: { main: '#ef9a9a' } }),
      background: mode === 'light' ? { default: '#f6f7f9', paper: '#ffffff' } : { default: '#121417', paper: '#1b1e22' },
    },
    typography: {
      fontFamily: 'system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "Liberation Sans", Arial, sans-serif',
    },
    shape: { borderRadius: 8 },
    components: {
      MuiButtonBase: { defaultProps: { disableRipple: false } },
      MuiCssBaseline: {
        styleOverrides: {
          // Visible focus everywhere, also for mouse-less users of custom controls.
          ':focus-visible': { outline: `3px solid ${mode === 'light' ? '#1e4fa3' : '#8ab4f8'}`, outlineOffset: 2 },
          code: { fontFamily: 'ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace' },
        },
      },
      MuiTableCell: { styleOverrides: { root: { paddingTop: 6, paddingBottom: 6 } } },
      // Wide tables scroll sideways at 800 px: the scroll area must be keyboard-reachable.
      MuiTableContainer: { defaultProps: { tabIndex: 0 } },
    },
  });
}
