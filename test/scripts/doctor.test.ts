/**
 * `npm run doctor`: passes against the local deployed shape (the front door as deployed), and
 * against plain `npm start` (no front door) says what is missing and exits non-zero.
 */
import { describe, expect, it } from 'vitest';
import { useDeployedShape } from '../support/deployed-shape.js';
import { doctor } from '../support/doctor.js';
import { useLocalStack } from '../integration/local-stack.js';

describe('npm run doctor', () => {
  const deployed = useDeployedShape('doctor-shape');
  const plain = useLocalStack('doctor-plain');

  it('passes every check against the local deployed shape, one line per check', async () => {
    const { code, lines } = await doctor([deployed.shape.url]);
    expect(lines.filter((line) => line.startsWith('FAIL'))).toEqual([]);
    expect(code).toBe(0);
    expect(lines.map((line) => line.slice(0, 4))).toEqual(['PASS', 'PASS', 'PASS', 'PASS', 'PASS', 'PASS', 'SKIP']);
    expect(lines.find((line) => line.includes('8 MiB PATCH'))).toMatch(/SIZE_INVALID/);
  });

  it('fails against plain npm start, saying the direct path is missing and what that means', async () => {
    const { code, lines } = await doctor([plain.registry.url]);
    expect(code).toBe(1);
    expect(lines.filter((line) => line.startsWith('FAIL'))).toEqual([
      expect.stringMatching(
        /^FAIL {2}8 MiB monolithic PUT \(direct path\): the upload Location carries no ticket — the registry is not behind the front door/,
      ),
    ]);
  });

  it('reports an unreachable registry once and exits non-zero; --help explains the checks', async () => {
    const unreachable = await doctor(['http://127.0.0.1:9']);
    expect(unreachable.code).toBe(1);
    expect(unreachable.lines[0]).toMatch(/^FAIL {2}login and token flow: no answer/);
    const help = await doctor(['--help']);
    expect(help.code).toBe(0);
    expect(help.lines[0]).toMatch(/^usage: npm run doctor/);
  });
});
