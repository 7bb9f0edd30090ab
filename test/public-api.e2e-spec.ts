import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import ts from 'typescript';

/**
 * The exported names of every entry point only grow: each name the last released version exported
 * (`support/public-api.baseline.json`, read off its `dist` type declarations) is still exported,
 * as a value or a type, from the same entry point.
 */
const baseline = JSON.parse(
  readFileSync(new URL('./support/public-api.baseline.json', import.meta.url), 'utf8'),
) as Record<string, string[]>;

function exportsOf(entries: string[]): Record<string, string[]> {
  const files = entries.map(
    (entry) =>
      new URL(`../src/${entry === 'index' ? '' : `${entry}/`}index.ts`, import.meta.url).pathname,
  );
  const program = ts.createProgram(files, {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    experimentalDecorators: true,
    skipLibCheck: true,
    noEmit: true,
  });
  const checker = program.getTypeChecker();
  const result: Record<string, string[]> = {};
  entries.forEach((entry, i) => {
    const source = program.getSourceFile(files[i])!;
    const module = checker.getSymbolAtLocation(source)!;
    result[entry] = checker.getExportsOfModule(module).map((symbol) => symbol.getName());
  });
  return result;
}

describe('Public API', () => {
  it('keeps every name each entry point exported before (exports only grow)', () => {
    const now = exportsOf(Object.keys(baseline));
    for (const [entry, names] of Object.entries(baseline)) {
      const missing = names.filter((name) => !now[entry].includes(name));
      expect({ entry, missing }).toEqual({ entry, missing: [] });
    }
  });
});
