import { readFileSync } from 'node:fs';
import { DIRECT_UPLOAD_PREFIX } from '../../registry/storage/keys.js';

/**
 * The CloudFront Function of the front door (front-door.js, docs/front-door.md) with its
 * settings substituted: the CDK app deploys exactly this, and the local CloudFront emulator runs
 * exactly this.
 */
export interface FrontDoorSettings {
  /** The region of the primary registry (origin `api`). */
  primaryRegion: string;
  /** Regions whose read-only registries serve pulls (origins `api-<region>`). */
  replicaRegions?: readonly string[];
  /** Whether the upload gateway takes upload PATCH and PUT (origin `gateway`). */
  gateway?: boolean;
  /** Viewer country (ISO 3166 alpha-2) to region; default: the region on the viewer's continent. */
  countryRegions?: Readonly<Record<string, string>>;
  /**
   * The entry the distribution is (docs/pull-through.md): `docker-mirror` for the Docker Hub
   * mirror's distribution, whose requests carry `x-registry-entry: docker-mirror`; the main
   * distribution removes any copy a viewer sends.
   */
  entry?: 'docker-mirror';
}

/** The origin ids of the distribution, as the function selects them. */
export const ORIGIN_IDS = {
  api: 'api',
  uploads: 'uploads',
  gateway: 'gateway',
  replica: (region: string) => `api-${region}`,
} as const;

/** The KeyValueStore keys the function reads; the token-keys custom resource writes them. */
export const FRONT_DOOR_KEYS = { ticketSecrets: 'ticket-secrets', originSecret: 'origin-secret' } as const;

/** The headers the function sets on every request to a registry origin, and the registry reads. */
export { ENTRY_HEADER, ORIGIN_SECRET_HEADER, VIEWER_ADDRESS_HEADER } from '../../registry/api/front-door.js';

/** S3's limit on one PutObject: larger bodies are refused by the function with SIZE_INVALID. */
export const MAX_SINGLE_PUT_BYTES = 5 * 1024 ** 3;

/** CloudFront's limit on a function's code. */
export const MAX_FUNCTION_BYTES = 10 * 1024;

const SOURCE = new URL('./front-door.js', import.meta.url);
const PLACEHOLDER = '__FRONT_DOOR_SETTINGS__';

export function frontDoorFunctionCode(settings: FrontDoorSettings): string {
  const replicas = settings.replicaRegions ?? [];
  const embedded = {
    origins: {
      api: ORIGIN_IDS.api,
      uploads: ORIGIN_IDS.uploads,
      ...(settings.gateway ? { gateway: ORIGIN_IDS.gateway } : {}),
      replicas: Object.fromEntries(replicas.map((region) => [region, ORIGIN_IDS.replica(region)])),
    },
    countryRegions: settings.countryRegions ?? nearestReplicaByCountry(settings.primaryRegion, replicas),
    directUploadPrefix: DIRECT_UPLOAD_PREFIX,
    entry: settings.entry ?? '',
    maxPutBytes: MAX_SINGLE_PUT_BYTES,
  };
  const source = readFileSync(SOURCE, 'utf8');
  if (!source.includes(PLACEHOLDER)) throw new Error(`${SOURCE.pathname} has no ${PLACEHOLDER}`);
  const code = source
    .replace(PLACEHOLDER, JSON.stringify(embedded))
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.length > 0 && !line.startsWith('//'))
    .join('\n');
  const size = Buffer.byteLength(code);
  if (size > MAX_FUNCTION_BYTES) throw new Error(`the front door function is ${size} bytes; CloudFront takes at most ${MAX_FUNCTION_BYTES}`);
  return code;
}

/**
 * The countries whose pulls a replica region serves: those on a continent that has a replica
 * region and not the primary one. Everything else goes to the primary.
 */
export function nearestReplicaByCountry(primaryRegion: string, replicaRegions: readonly string[]): Record<string, string> {
  const table: Record<string, string> = {};
  const primary = continentOfRegion(primaryRegion);
  for (const [continent, countries] of Object.entries(COUNTRIES)) {
    if (continent === primary) continue;
    const region = replicaRegions.find((candidate) => continentOfRegion(candidate) === continent);
    if (region) for (const country of countries.split(' ')) table[country] = region;
  }
  return table;
}

function continentOfRegion(region: string): string | undefined {
  if (/^ap-southeast-(2|4)$/.test(region)) return 'OC';
  const prefix = region.split('-')[0]!;
  return { us: 'NA', ca: 'NA', mx: 'NA', sa: 'SA', eu: 'EU', me: 'ME', il: 'ME', af: 'AF', ap: 'AS' }[prefix];
}

/** The larger countries of each continent (a viewer elsewhere is served by the primary). */
const COUNTRIES: Record<string, string> = {
  NA: 'US CA MX GT BZ SV HN NI CR PA CU DO HT JM BS BB TT PR',
  SA: 'BR AR CL CO PE VE EC BO PY UY GY SR',
  EU: 'GB IE FR DE NL BE LU CH AT IT ES PT DK NO SE FI IS PL CZ SK HU SI HR RO BG GR EE LV LT UA MD RS BA ME MK AL MT CY',
  ME: 'AE SA QA BH KW OM IL JO LB TR IQ',
  AF: 'ZA NG KE EG MA DZ TN GH ET TZ UG',
  AS: 'JP KR TW HK SG MY TH VN PH ID IN PK BD LK',
  OC: 'AU NZ',
};
