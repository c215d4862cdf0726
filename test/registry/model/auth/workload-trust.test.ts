import { describe, expect, it } from 'vitest';
import { failedCondition, globMatches, issuerUrlProblem, trustGrants } from '../../../../registry/model/auth/workload-trust.js';

describe('claim conditions', () => {
  it.each([
    ['org/app', 'org/app', true],
    ['org/app', 'org/app2', false],
    ['refs/heads/*', 'refs/heads/feature/x', true],
    ['refs/heads/*', 'refs/tags/v1', false],
    ['repo:org/*:ref:refs/heads/main', 'repo:org/app:ref:refs/heads/main', true],
    ['repo:org/*:ref:refs/heads/main', 'repo:org/app:ref:refs/heads/dev', false],
    ['*-prod', 'eu-prod', true],
    ['a*b*c', 'axxbyyc', true],
    ['a*b*c', 'axxbyy', false],
    ['', '', true],
  ])('%s against %s: %s', (pattern, value, matches) => {
    expect(globMatches(pattern, value)).toBe(matches);
  });

  it('stays fast on a hostile claim', () => {
    const started = performance.now();
    expect(globMatches(`${'*a'.repeat(50)}b`, 'a'.repeat(5000))).toBe(false);
    expect(performance.now() - started).toBeLessThan(500);
  });

  it('needs every condition; missing, object and array claims never match; numbers and booleans compare as text', () => {
    const conditions = [
      { claim: 'repository', value: 'org/*' },
      { claim: 'run_attempt', value: '1' },
    ];
    expect(failedCondition(conditions, { repository: 'org/app', run_attempt: 1 })).toBeUndefined();
    expect(failedCondition(conditions, { repository: 'org/app' })).toEqual(conditions[1]);
    expect(failedCondition(conditions, { repository: ['org/app'], run_attempt: '1' })).toEqual(conditions[0]);
    expect(failedCondition([{ claim: 'toString', value: '*' }], {})).toEqual({ claim: 'toString', value: '*' });
  });
});

it('drops admin from stored grants', () => {
  expect(
    trustGrants({
      grants: [
        { pattern: 'ci/*', actions: ['admin'] },
        { pattern: 'ci/app', actions: ['pull', 'admin'] },
      ],
    }),
  ).toEqual([{ pattern: 'ci/app', actions: ['pull'] }]);
});

it.each([
  ['https://token.actions.githubusercontent.com', false, undefined],
  ['https://gitlab.example.com/', false, undefined],
  ['http://gitlab.example.com', true, 'must use https'],
  ['http://127.0.0.1:8080', false, 'must use https (plain http to a loopback address is for the local registry only)'],
  ['http://127.0.0.1:8080', true, undefined],
  ['http://[::1]:8080', true, undefined],
  ['https://user:pw@idp.example', false, 'must not carry credentials, a query or a fragment'],
  ['https://idp.example/?x=1', false, 'must not carry credentials, a query or a fragment'],
  ['not a url', true, 'is not a URL'],
])('issuer %s (loopback http allowed: %s): %s', (issuer, allowLoopbackHttp, problem) => {
  expect(issuerUrlProblem(issuer, allowLoopbackHttp)).toBe(problem);
});
