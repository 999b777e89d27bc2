import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { shellQuote } from './shell';

/** What a POSIX shell makes of `word`: the arguments `printf` receives, one per line. */
function parsed(word: string): string {
  return execFileSync('sh', ['-c', `printf '%s\\n' ${word}`], { encoding: 'utf8' });
}

describe('shellQuote', () => {
  const hostile = [
    'report.tar.gz',
    'report$(id>pwned.txt).tar.gz',
    'a`id`b',
    "it's here",
    "''",
    'two\nlines',
    'back\\slash "double" $HOME ${X} * ? ~ ; & | < > !',
    '',
  ];

  it('wraps every value in single quotes and escapes the quotes inside', () => {
    expect(shellQuote('report$(id>pwned.txt).tar.gz')).toBe("'report$(id>pwned.txt).tar.gz'");
    expect(shellQuote('a`id`b')).toBe("'a`id`b'");
    expect(shellQuote("it's")).toBe("'it'\\''s'");
    expect(shellQuote('two\nlines')).toBe("'two\nlines'");
    expect(shellQuote('')).toBe("''");
  });

  it.each(hostile)('a shell reads %j back as exactly one argument, running nothing', (value) => {
    expect(parsed(shellQuote(value))).toBe(`${value}\n`);
  });
});
