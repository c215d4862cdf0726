import { SSMClient } from '@aws-sdk/client-ssm';
import type { CloudFormationCustomResourceEvent } from 'aws-lambda';
import { manageTokenKeys, physicalResourceIdOnFailure } from '../registry/services/auth/token-keys.js';
import { answerCustomResource } from '../registry/transport/custom-resource.js';

let ssm: SSMClient | undefined;

/** The custom resource that keeps the token key pair (and the upload ticket secret) in SSM. */
export async function handler(event: CloudFormationCustomResourceEvent): Promise<void> {
  await answerCustomResource(
    event,
    'token keys',
    () => {
      ssm ??= new SSMClient({});
      return manageTokenKeys(event, ssm);
    },
    () => physicalResourceIdOnFailure(event),
  );
}
