import * as path from 'node:path';
import { buildSync } from 'esbuild';
import { AssetHashType, Duration, Fn, Stack } from 'aws-cdk-lib';
import type * as acm from 'aws-cdk-lib/aws-certificatemanager';
import * as cloudfront from 'aws-cdk-lib/aws-cloudfront';
import * as origins from 'aws-cdk-lib/aws-cloudfront-origins';
import type * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as route53 from 'aws-cdk-lib/aws-route53';
import * as targets from 'aws-cdk-lib/aws-route53-targets';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as s3n from 'aws-cdk-lib/aws-s3-notifications';
import { Construct } from 'constructs';
import { acknowledgeNag } from '../nag-acknowledgements.js';
import { PROJECT_ROOT } from '../naming.js';
import {
  ENTRY_HEADER,
  frontDoorFunctionCode,
  ORIGIN_IDS,
  type FrontDoorSettings,
  ORIGIN_SECRET_HEADER,
  VIEWER_ADDRESS_HEADER,
} from '../../functions/edge/front-door-code.js';
import { DIRECT_UPLOAD_PREFIX } from '../../registry/storage/keys.js';

/** cdk-nag's finding for the AWS managed policy of Lambda's basic execution role. */
const BASIC_EXECUTION_ROLE_FINDING = 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]';

/** The upload session paths: the behavior whose answers the origin-response function translates. */
export const UPLOAD_PATH_PATTERN = '/v2/*/blobs/uploads/*';

/**
 * The headers the registry origins need besides Authorization (which CloudFront forwards only as
 * part of the cache key): the ones the registry reads, the ones the front door's function sets
 * for the registry and for S3, and the viewer's country that the function routes pulls by.
 * Host is not among them: every origin gets its own host name.
 */
export const FORWARDED_HEADERS = [
  'accept',
  ENTRY_HEADER,
  'content-type',
  'content-range',
  ORIGIN_SECRET_HEADER,
  VIEWER_ADDRESS_HEADER,
  'x-amz-checksum-sha256',
  'x-amz-meta-registry-repository',
  'x-amz-meta-registry-session',
  'cloudfront-viewer-country',
] as const;

export interface FrontDoorProps {
  readonly registryName: string;
  /** The primary region's HTTP API endpoint (`https://<id>.execute-api.<region>.amazonaws.com`). */
  readonly apiEndpoint: string;
  readonly primaryRegion: string;
  /** Replica regions' API endpoints: pulls of viewers nearer to them go there. */
  readonly replicaApiEndpoints?: readonly { readonly region: string; readonly endpoint: string }[];
  /** The blob bucket: monolithic PUTs go there, under `direct/`. */
  readonly bucket: s3.Bucket;
  /** The function that records what lands under `direct/` (functions/direct-upload-recorder.ts). */
  readonly recorder: lambda.IFunction;
  /** The upload gateway's internal load balancer, reached through a CloudFront VPC origin. */
  readonly gatewayLoadBalancer?: elbv2.IApplicationLoadBalancer;
  /** The registry's own host name; its certificate must be in us-east-1 (CloudFront's rule). */
  readonly domain?: {
    readonly domainName: string;
    readonly certificate: acm.ICertificate;
    readonly hostedZone?: { readonly id: string; readonly name: string };
  };
  /**
   * The Docker Hub mirror entry (docs/pull-through.md): a second distribution on the same origins
   * whose function marks every request `x-registry-entry: docker-mirror`; read-only, so it has no
   * upload behaviors. `domainName` is on the registry's certificate (a subject alternative name).
   */
  readonly dockerMirror?: { readonly domainName?: string };
}

/**
 * The registry's front door (docs/front-door.md): a CloudFront distribution is the only public
 * entry, on every deployment.
 *
 * - One CloudFront Function (functions/edge/front-door.js, viewer request) on every behavior, with
 *   its KeyValueStore holding the ticket secrets and the origin secret (written at deploy by the
 *   token keys resource, never in the template): it sends a monolithic PUT with a valid ticket
 *   straight to the bucket, pulls to the nearest replica, upload bodies to the gateway when there
 *   is one, and everything else to the primary API, with the origin secret.
 * - A Lambda@Edge origin-response function (functions/edge/upload-response.ts) on the upload
 *   behavior only, which turns S3's answers and API Gateway's bare size refusals into OCI answers.
 * - The bucket as origin `uploads` with origin access control: the bucket policy lets only this
 *   distribution write, only PutObject, only under `direct/`; an S3 event records each object.
 * - Caching is off for the API (TTL at most 1 s, keyed by Authorization and the query string).
 */
export class FrontDoor extends Construct {
  readonly distribution: cloudfront.Distribution;
  readonly keyValueStore: cloudfront.KeyValueStore;
  readonly function: cloudfront.Function;
  readonly uploadResponse: cloudfront.experimental.EdgeFunction;
  /** `https://<custom domain or distribution domain>`: the registry's one URL. */
  readonly url: string;
  /** With `dockerMirror`: the mirror's distribution and its URL (dockerd's `registry-mirrors`). */
  readonly mirror?: { readonly distribution: cloudfront.Distribution; readonly function: cloudfront.Function; readonly url: string };

  constructor(scope: Construct, id: string, props: FrontDoorProps) {
    super(scope, id);
    const replicas = props.replicaApiEndpoints ?? [];

    this.keyValueStore = new cloudfront.KeyValueStore(this, 'Secrets', {
      comment: `${props.registryName}: upload ticket secrets and the origin secret of the front door function`,
    });
    this.function = this.viewerFunction('Function', `${props.registryName}: front door (tickets, direct uploads, origins)`, {
      primaryRegion: props.primaryRegion,
      replicaRegions: replicas.map((replica) => replica.region),
      gateway: !!props.gatewayLoadBalancer,
    });

    this.uploadResponse = new cloudfront.experimental.EdgeFunction(this, 'UploadResponse', {
      description: `${props.registryName}: OCI answers for direct uploads and oversized upload bodies (origin response)`,
      runtime: lambda.Runtime.NODEJS_22_X,
      handler: 'index.handler',
      code: edgeFunctionCode(path.join(PROJECT_ROOT, 'functions', 'edge', 'upload-response.ts')),
      memorySize: 128,
      timeout: Duration.seconds(5),
    });
    // Outside us-east-1 the function lives in a stack of its own there: acknowledge on the function itself.
    acknowledgeNag(
      this.uploadResponse.lambda,
      'AwsSolutions-L1',
      'The project targets nodejs22.x (its code and tests run on Node 20 and 22); move to a newer runtime once the test suite runs on it.',
    );
    acknowledgeNag(
      this.uploadResponse.lambda,
      BASIC_EXECUTION_ROLE_FINDING,
      'Lambda@Edge writes its logs in whichever region serves the request, to log groups it creates there: the managed basic execution policy is what that needs.',
    );

    const cachePolicy = new cloudfront.CachePolicy(this, 'ApiCachePolicy', {
      comment: 'Registry API: no caching (at most 1 s, per Authorization and query string), so that Authorization reaches the origin',
      minTtl: Duration.seconds(0),
      defaultTtl: Duration.seconds(0),
      // CloudFront forwards a header only through a policy; a cache key needs a TTL above zero.
      maxTtl: Duration.seconds(1),
      headerBehavior: cloudfront.CacheHeaderBehavior.allowList('authorization'),
      queryStringBehavior: cloudfront.CacheQueryStringBehavior.all(),
      cookieBehavior: cloudfront.CacheCookieBehavior.none(),
    });
    const originRequestPolicy = new cloudfront.OriginRequestPolicy(this, 'ApiOriginRequestPolicy', {
      comment: 'Registry API: the headers the registry and the front door function use; never Host',
      headerBehavior: cloudfront.OriginRequestHeaderBehavior.allowList(...FORWARDED_HEADERS),
      queryStringBehavior: cloudfront.OriginRequestQueryStringBehavior.all(),
      cookieBehavior: cloudfront.OriginRequestCookieBehavior.none(),
    });
    const behavior = (origin: cloudfront.IOrigin, viewerFunction: cloudfront.Function = this.function): cloudfront.BehaviorOptions => ({
      origin,
      viewerProtocolPolicy: cloudfront.ViewerProtocolPolicy.HTTPS_ONLY,
      allowedMethods: cloudfront.AllowedMethods.ALLOW_ALL,
      cachedMethods: cloudfront.CachedMethods.CACHE_GET_HEAD,
      cachePolicy,
      originRequestPolicy,
      functionAssociations: [{ function: viewerFunction, eventType: cloudfront.FunctionEventType.VIEWER_REQUEST }],
      compress: false,
    });

    const apiOrigin = httpApiOrigin(props.apiEndpoint, ORIGIN_IDS.api);
    // The bucket as CloudFront sees it: imported, so that the origin adds no policy of its own
    // (it would grant s3:PutObject on the whole bucket); the statement below is the grant.
    const uploadsOrigin = origins.S3BucketOrigin.withOriginAccessControl(s3.Bucket.fromBucketArn(this, 'UploadsBucket', props.bucket.bucketArn), {
      originId: ORIGIN_IDS.uploads,
      originAccessLevels: [cloudfront.AccessLevel.WRITE],
    });
    // CloudFront knows only origins that a behavior names, and the function selects among them by
    // id: each other origin gets a behavior on a path no client uses (the function still runs there).
    const extraOrigins: [string, cloudfront.IOrigin][] = [
      [ORIGIN_IDS.uploads, uploadsOrigin],
      ...replicas.map(({ region, endpoint }): [string, cloudfront.IOrigin] => [
        ORIGIN_IDS.replica(region),
        httpApiOrigin(endpoint, ORIGIN_IDS.replica(region)),
      ]),
      ...(props.gatewayLoadBalancer
        ? [
            [
              ORIGIN_IDS.gateway,
              origins.VpcOrigin.withApplicationLoadBalancer(props.gatewayLoadBalancer, {
                originId: ORIGIN_IDS.gateway,
                protocolPolicy: cloudfront.OriginProtocolPolicy.HTTP_ONLY,
                // A multi-GB body takes long; the gateway answers when it has proven the digest.
                readTimeout: Duration.seconds(60),
              }),
            ] as [string, cloudfront.IOrigin],
          ]
        : []),
    ];

    this.distribution = new cloudfront.Distribution(this, 'Distribution', {
      comment: `${props.registryName}: OCI registry front door`,
      defaultBehavior: behavior(apiOrigin),
      additionalBehaviors: {
        [UPLOAD_PATH_PATTERN]: {
          ...behavior(apiOrigin),
          edgeLambdas: [
            { functionVersion: this.uploadResponse.currentVersion, eventType: cloudfront.LambdaEdgeEventType.ORIGIN_RESPONSE, includeBody: false },
          ],
        },
        ...Object.fromEntries(extraOrigins.map(([originId, origin]) => [`/_front-door-origins/${originId}/*`, behavior(origin)])),
      },
      httpVersion: cloudfront.HttpVersion.HTTP2_AND_3,
      enableIpv6: true,
      priceClass: cloudfront.PriceClass.PRICE_CLASS_ALL,
      ...(props.domain
        ? {
            domainNames: [props.domain.domainName],
            certificate: props.domain.certificate,
            minimumProtocolVersion: cloudfront.SecurityPolicyProtocol.TLS_V1_2_2021,
          }
        : {}),
    });
    acknowledgeNag(
      this.distribution,
      'Annotation::@aws-cdk/aws-cloudfront-origins:updateImportedBucketPolicyOac',
      'Deliberate: the bucket origin is imported so that CDK adds no grant of its own (s3:PutObject on the whole bucket); FrontDoorDirectUploads below is the grant, under direct/ only.',
    );
    this.url = `https://${props.domain?.domainName ?? this.distribution.distributionDomainName}`;
    acknowledgeNag(
      this.distribution,
      'AwsSolutions-CFR1',
      'A registry serves its users wherever they are; access is controlled by registry tokens, not by country.',
    );
    acknowledgeNag(
      this.distribution,
      'AwsSolutions-CFR2',
      'Every request is authorized by the registry (tokens, upload tickets checked at the edge); AWS WAF would add $5+/month and per-request fees to a registry that costs nothing idle. Add a web ACL if the threat model needs one.',
    );
    acknowledgeNag(
      this.distribution,
      'AwsSolutions-CFR3',
      'The API access log records every request that reaches the registry; upload tickets travel in query strings, so CloudFront access logs would store live credentials.',
    );
    if (!props.domain) {
      acknowledgeNag(
        this.distribution,
        'AwsSolutions-CFR4',
        'Without a custom domain the distribution serves the default *.cloudfront.net certificate, whose minimum protocol CloudFront does not let a distribution choose; with a domain it is TLSv1.2_2021.',
      );
    }
    // cdk-nag looks for an origin access identity; the bucket origin uses origin access control, its successor.
    acknowledgeNag(
      this.distribution,
      'AwsSolutions-CFR7',
      'The S3 origin uses origin access control (SigV4), which supersedes origin access identities.',
    );

    if (props.dockerMirror) this.mirror = this.dockerMirror(props, behavior, apiOrigin, extraOrigins);

    // Only this distribution may write to the bucket, only PutObject, only under the direct prefix.
    props.bucket.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'FrontDoorDirectUploads',
        principals: [new iam.ServicePrincipal('cloudfront.amazonaws.com')],
        actions: ['s3:PutObject'],
        resources: [props.bucket.arnForObjects(`${DIRECT_UPLOAD_PREFIX}*`)],
        conditions: { StringEquals: { 'AWS:SourceArn': this.distribution.distributionArn } },
      }),
    );
    props.bucket.addEventNotification(s3.EventType.OBJECT_CREATED, new s3n.LambdaDestination(props.recorder), {
      prefix: DIRECT_UPLOAD_PREFIX,
    });
    acknowledgeBucketNotificationsHandler(Stack.of(this));

    if (props.domain?.hostedZone) {
      const zone = route53.HostedZone.fromHostedZoneAttributes(this, 'HostedZone', {
        hostedZoneId: props.domain.hostedZone.id,
        zoneName: props.domain.hostedZone.name,
      });
      const target = route53.RecordTarget.fromAlias(new targets.CloudFrontTarget(this.distribution));
      new route53.ARecord(this, 'AliasIpv4', { zone, recordName: props.domain.domainName, target });
      new route53.AaaaRecord(this, 'AliasIpv6', { zone, recordName: props.domain.domainName, target });
      const mirrorName = props.dockerMirror?.domainName;
      if (this.mirror && mirrorName) {
        const mirrorTarget = route53.RecordTarget.fromAlias(new targets.CloudFrontTarget(this.mirror.distribution));
        new route53.ARecord(this, 'MirrorAliasIpv4', { zone, recordName: mirrorName, target: mirrorTarget });
        new route53.AaaaRecord(this, 'MirrorAliasIpv6', { zone, recordName: mirrorName, target: mirrorTarget });
      }
    }
  }

  /** The front door's CloudFront Function (front-door.js) with these settings, reading the one KeyValueStore. */
  private viewerFunction(id: string, comment: string, settings: FrontDoorSettings): cloudfront.Function {
    return new cloudfront.Function(this, id, {
      comment,
      runtime: cloudfront.FunctionRuntime.JS_2_0,
      keyValueStore: this.keyValueStore,
      code: cloudfront.FunctionCode.fromInline(frontDoorFunctionCode(settings)),
    });
  }

  /**
   * The Docker Hub mirror's distribution: the registry origins (the primary API, and replicas for
   * nearby viewers) behind a function that marks the entry; no uploads origin, gateway or upload
   * behavior (the mirror entry refuses pushes), and the same cache and origin request policies.
   */
  private dockerMirror(
    props: FrontDoorProps,
    behavior: (origin: cloudfront.IOrigin, viewerFunction?: cloudfront.Function) => cloudfront.BehaviorOptions,
    apiOrigin: cloudfront.IOrigin,
    extraOrigins: readonly [string, cloudfront.IOrigin][],
  ): NonNullable<FrontDoor['mirror']> {
    const replicas = props.replicaApiEndpoints ?? [];
    const mirrorFunction = this.viewerFunction('MirrorFunction', `${props.registryName}: Docker Hub mirror entry (origins, entry header)`, {
      primaryRegion: props.primaryRegion,
      replicaRegions: replicas.map((replica) => replica.region),
      entry: 'docker-mirror',
    });
    const replicaOrigins = extraOrigins.filter(([originId]) => originId.startsWith(ORIGIN_IDS.replica('')));
    const domainName = props.dockerMirror?.domainName;
    const distribution = new cloudfront.Distribution(this, 'MirrorDistribution', {
      comment: `${props.registryName}: Docker Hub mirror (registry-mirrors)`,
      defaultBehavior: behavior(apiOrigin, mirrorFunction),
      additionalBehaviors: Object.fromEntries(
        replicaOrigins.map(([originId, origin]) => [`/_front-door-origins/${originId}/*`, behavior(origin, mirrorFunction)]),
      ),
      httpVersion: cloudfront.HttpVersion.HTTP2_AND_3,
      enableIpv6: true,
      priceClass: cloudfront.PriceClass.PRICE_CLASS_ALL,
      ...(domainName && props.domain
        ? {
            domainNames: [domainName],
            certificate: props.domain.certificate,
            minimumProtocolVersion: cloudfront.SecurityPolicyProtocol.TLS_V1_2_2021,
          }
        : {}),
    });
    acknowledgeNag(
      distribution,
      'AwsSolutions-CFR1',
      'A Docker Hub mirror serves its users wherever they are; access is controlled by registry tokens, not by country.',
    );
    acknowledgeNag(
      distribution,
      'AwsSolutions-CFR2',
      'Every request is authorized by the registry (tokens); AWS WAF would add fixed monthly and per-request fees to a mirror that costs nothing idle. Add a web ACL if the threat model needs one.',
    );
    acknowledgeNag(distribution, 'AwsSolutions-CFR3', 'The API access log records every request that reaches the registry through the mirror.');
    if (!domainName) {
      acknowledgeNag(
        distribution,
        'AwsSolutions-CFR4',
        'Without a custom domain the mirror serves the default *.cloudfront.net certificate, whose minimum protocol CloudFront does not let a distribution choose; with a domain it is TLSv1.2_2021.',
      );
    }
    return { distribution, function: mirrorFunction, url: `https://${domainName ?? distribution.distributionDomainName}` };
  }
}

/** An HTTP API endpoint URL as a CloudFront origin with its own host name, HTTPS with TLS 1.2. */
function httpApiOrigin(endpoint: string, originId: string): cloudfront.IOrigin {
  return new origins.HttpOrigin(Fn.select(2, Fn.split('/', endpoint)), {
    originId,
    protocolPolicy: cloudfront.OriginProtocolPolicy.HTTPS_ONLY,
    originSslProtocols: [cloudfront.OriginSslPolicy.TLS_V1_2],
  });
}

/**
 * The origin-response function, bundled by esbuild into one ESM file (Lambda@Edge takes no
 * environment variables and no layers). When the stack's bundling is skipped (the template
 * tests), the sources are staged as they are.
 */
function edgeFunctionCode(entry: string): lambda.Code {
  return lambda.Code.fromAsset(path.dirname(entry), {
    assetHashType: AssetHashType.OUTPUT,
    bundling: {
      image: lambda.Runtime.NODEJS_22_X.bundlingImage,
      local: {
        tryBundle(outputDir: string): boolean {
          buildSync({
            entryPoints: [entry],
            outfile: path.join(outputDir, 'index.mjs'),
            bundle: true,
            platform: 'node',
            format: 'esm',
            target: 'node22',
            minify: true,
            keepNames: true,
            logLevel: 'warning',
          });
          return true;
        },
      },
    },
  });
}

/** CDK's own handler that configures bucket notifications: one per stack, written by CDK. */
function acknowledgeBucketNotificationsHandler(stack: Stack): void {
  const handler = stack.node.tryFindChild('BucketNotificationsHandler050a0587b7544547bf325f094a3db834');
  if (!handler) return;
  acknowledgeNag(
    handler,
    BASIC_EXECUTION_ROLE_FINDING,
    "CDK's bucket notifications handler (a custom resource that runs during deployments only) uses the AWS managed basic execution policy.",
  );
}
