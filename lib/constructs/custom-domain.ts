import * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import * as acm from 'aws-cdk-lib/aws-certificatemanager';
import * as route53 from 'aws-cdk-lib/aws-route53';
import * as targets from 'aws-cdk-lib/aws-route53-targets';
import { Construct } from 'constructs';
import type { CustomDomainOptions } from '../registry-options.js';

/**
 * The registry's own host name on a regional API Gateway custom domain.
 *
 * With a hosted zone, the certificate is issued by ACM and validated through DNS in that zone, and
 * IPv4 and IPv6 alias records point the name at the API. With only a certificate ARN, the DNS
 * record is left to the operator (the `RegionalDomainName` of the domain is the target).
 *
 * The hosted zone is referenced by id and name, never looked up, so synthesis needs no AWS
 * credentials.
 */
export class CustomDomain extends Construct {
  /** The host name as a plain string (not a reference), usable in other regions' stacks. */
  readonly hostName: string;
  readonly domainName: apigwv2.DomainName;
  readonly certificate: acm.ICertificate;

  constructor(scope: Construct, id: string, options: CustomDomainOptions) {
    super(scope, id);
    this.hostName = options.domainName;

    const hostedZone = options.hostedZone
      ? route53.HostedZone.fromHostedZoneAttributes(this, 'HostedZone', {
          hostedZoneId: options.hostedZone.id,
          zoneName: options.hostedZone.name,
        })
      : undefined;

    if (options.certificateArn) {
      this.certificate = acm.Certificate.fromCertificateArn(this, 'Certificate', options.certificateArn);
    } else if (hostedZone) {
      this.certificate = new acm.Certificate(this, 'Certificate', {
        domainName: options.domainName,
        validation: acm.CertificateValidation.fromDns(hostedZone),
      });
    } else {
      // resolveRegistryOptions already refuses this combination.
      throw new Error('a custom domain needs a hosted zone or a certificate ARN');
    }

    this.domainName = new apigwv2.DomainName(this, 'DomainName', {
      domainName: options.domainName,
      certificate: this.certificate,
      endpointType: apigwv2.EndpointType.REGIONAL,
      securityPolicy: apigwv2.SecurityPolicy.TLS_1_2,
      ipAddressType: apigwv2.IpAddressType.DUAL_STACK,
    });

    if (hostedZone) {
      const target = route53.RecordTarget.fromAlias(
        new targets.ApiGatewayv2DomainProperties(this.domainName.regionalDomainName, this.domainName.regionalHostedZoneId),
      );
      const recordName = options.domainName;
      new route53.ARecord(this, 'AliasIpv4', { zone: hostedZone, recordName, target });
      new route53.AaaaRecord(this, 'AliasIpv6', { zone: hostedZone, recordName, target });
    }
  }
}
