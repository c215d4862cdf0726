import { describe, expect, it } from 'vitest';
import { ACTIONS, permittedActions, type Grant } from '../../../../registry/model/auth/access-model.js';
import { intersectGrants, parseGrantText } from '../../../../registry/model/auth/grant-sets.js';

const REPOSITORIES = ['team-a/app', 'team-a/tools/lint', 'team-a', 'team-ab/app', 'team-b/app', 'other'];

/** What a set of grants allows, as `repository:action` strings, over a few repositories. */
function allowed(grants: readonly Grant[]): string[] {
  return REPOSITORIES.flatMap((repository) => [...permittedActions(grants, repository)].sort().map((action) => `${repository}:${action}`)).sort();
}

describe('intersectGrants', () => {
  const cases: [string, Grant[], Grant[]][] = [
    ['everything narrowed to a namespace', [{ pattern: '*', actions: ['admin'] }], [{ pattern: 'team-a/*', actions: ['pull'] }]],
    [
      'a namespace narrowed to a repository in it',
      [{ pattern: 'team-a/*', actions: ['pull', 'push'] }],
      [{ pattern: 'team-a/app', actions: ['push', 'delete'] }],
    ],
    ['nested namespaces', [{ pattern: 'team-a/*', actions: ['pull'] }], [{ pattern: 'team-a/tools/*', actions: ['admin'] }]],
    ['namespaces that share only a name prefix', [{ pattern: 'team-a/*', actions: ['pull'] }], [{ pattern: 'team-ab/*', actions: ['pull'] }]],
    ['a repository outside the namespace', [{ pattern: 'team-b/*', actions: ['pull'] }], [{ pattern: 'team-a/app', actions: ['pull'] }]],
    [
      'several grants on each side',
      [
        { pattern: 'team-a/*', actions: ['pull'] },
        { pattern: 'team-a/app', actions: ['push'] },
        { pattern: 'other', actions: ['delete'] },
      ],
      [
        { pattern: '*', actions: ['pull', 'push'] },
        { pattern: 'other', actions: ['admin'] },
      ],
    ],
  ];
  for (const [what, granted, limit] of cases) {
    it(`allows exactly what both allow: ${what}`, () => {
      const both = allowed(granted).filter((entry) => allowed(limit).includes(entry));
      expect(allowed(intersectGrants(granted, limit))).toEqual(both);
      expect(allowed(intersectGrants(limit, granted))).toEqual(both);
    });
  }

  it('never gives more than the granted side, whatever the limit asks', () => {
    const granted: Grant[] = [{ pattern: 'team-a/app', actions: ['pull'] }];
    expect(allowed(intersectGrants(granted, [{ pattern: '*', actions: [...ACTIONS] }]))).toEqual(['team-a/app:pull']);
    expect(intersectGrants([], [{ pattern: '*', actions: ['admin'] }])).toEqual([]);
  });
});

describe('parseGrantText', () => {
  it('reads <pattern>:<actions> and explains what is wrong otherwise', () => {
    expect(parseGrantText('team-a/*:pull,push')).toEqual({ pattern: 'team-a/*', actions: ['pull', 'push'] });
    for (const bad of ['team-a/*', ':pull', 'Team-A/*:pull', 'team-a/*:write', 'team-a/*:']) {
      expect(parseGrantText(bad)).toHaveProperty('problem');
    }
  });
});
