import { createContext, useContext, useEffect, useMemo, useState, type ReactNode } from 'react';
import { ThemeProvider } from '@mui/material/styles';
import CssBaseline from '@mui/material/CssBaseline';
import type { PaletteMode } from '@mui/material';
import { buildTheme } from './theme';

/** The only thing the page keeps in localStorage: the theme choice. */
const KEY = 'arca.theme';
type Choice = PaletteMode | 'system';

const ColorModeContext = createContext<{ mode: PaletteMode; choice: Choice; toggle: () => void }>({
  mode: 'light',
  choice: 'system',
  toggle: () => undefined,
});

function systemMode(): PaletteMode {
  return typeof window !== 'undefined' && window.matchMedia?.('(prefers-color-scheme: dark)').matches ? 'dark' : 'light';
}

function readChoice(): Choice {
  try {
    const v = localStorage.getItem(KEY);
    return v === 'light' || v === 'dark' ? v : 'system';
  } catch {
    return 'system';
  }
}

export function ColorModeProvider({ children }: { children: ReactNode }) {
  const [choice, setChoice] = useState<Choice>(readChoice);
  const [system, setSystem] = useState<PaletteMode>(systemMode);
  useEffect(() => {
    const mq = window.matchMedia?.('(prefers-color-scheme: dark)');
    if (!mq) return;
    const on = () => setSystem(mq.matches ? 'dark' : 'light');
    mq.addEventListener?.('change', on);
    return () => mq.removeEventListener?.('change', on);
  }, []);
  const mode = choice === 'system' ? system : choice;
  const theme = useMemo(() => buildTheme(mode), [mode]);
  const value = useMemo(
    () => ({
      mode,
      choice,
      toggle: () => {
        const next: PaletteMode = mode === 'dark' ? 'light' : 'dark';
        setChoice(next);
        try {
          localStorage.setItem(KEY, next);
        } catch {
          // not remembered, still applied
        }
      },
    }),
    [mode, choice],
  );
  useEffect(() => {
    document.documentElement.style.colorScheme = mode;
  }, [mode]);
  return (
    <ColorModeContext.Provider value={value}>
      <ThemeProvider theme={theme}>
        <CssBaseline />
        {children}
      </ThemeProvider>
    </ColorModeContext.Provider>
  );
}

export function useColorMode() {
  return useContext(ColorModeContext);
}
