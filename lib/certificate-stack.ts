import { Stack, type StackProps } from 'aws-cdk-lib';
import * as acm from 'aws-cdk-lib/aws-certificatemanager';
import * as route53 from 'aws-cdk-lib/aws-route53';
import type { Construct } from 'constructs';
import type { CustomDomainOptions } from './registry-options.js';

export interface CertificateStackProps extends StackProps {
  readonly domain: CustomDomainOptions;
}

/**
 * The certificate of the registry's domain for its front door: CloudFront takes certificates
 * from us-east-1 only, so a registry elsewhere gets this small stack there (deployed first). The
 * primary stack refers to it across regions (a weak reference, resolved at deploy time by
 * `Fn::GetStackOutput`, see lib/registry-app.ts). Validated through DNS in the hosted zone.
 */
export class CertificateStack extends Stack {
  readonly certificate: acm.ICertificate;

  constructor(scope: Construct, id: string, props: CertificateStackProps) {
    super(scope, id, props);
    const zone = props.domain.hostedZone;
    if (!zone) throw new Error('a certificate for the front door needs the hosted zone of the domain (or certificateArn in us-east-1)');
    this.certificate = new acm.Certificate(this, 'Certificate', {
      domainName: props.domain.domainName,
      subjectAlternativeNames: props.domain.alternativeNames ? [...props.domain.alternativeNames] : undefined,
      validation: acm.CertificateValidation.fromDns(
        route53.HostedZone.fromHostedZoneAttributes(this, 'HostedZone', { hostedZoneId: zone.id, zoneName: zone.name }),
      ),
    });
  }
}
