import { SSMClient } from '@aws-sdk/client-ssm';
import type { CloudFormationCustomResourceEvent } from 'aws-lambda';
import { manageTokenKeys, physicalResourceIdOnFailure } from '../registry/services/auth/token-keys.js';
import { answerCustomResource } from '../registry/transport/custom-resource.js';
import { keyValueStoreWriter } from '../registry/storage/key-value-store.js';

let ssm: SSMClient | undefined;

/**
 * The custom resource that keeps the token key pair (and the upload ticket and origin secrets) in
 * SSM, and the front door's secrets in its KeyValueStore.
 */
export async function handler(event: CloudFormationCustomResourceEvent): Promise<void> {
  await answerCustomResource(
    event,
    'token keys',
    () => {
      ssm ??= new SSMClient({});
      return manageTokenKeys(event, ssm, keyValueStoreWriter());
    },
    () => physicalResourceIdOnFailure(event),
  );
}
