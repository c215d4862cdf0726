import type { RegistryEvent } from './registry-event.js';

/** The `source` of the registry's EventBridge events (docs/events.md). ECR's is `aws.ecr`, which only AWS may send. */
export const EVENT_SOURCE = 'serverless-oci-registry';
/** ECR's own detail-type, so that a rule written for ECR needs only its `source` changed. */
export const EVENT_DETAIL_TYPE = 'ECR Image Action';

export interface EventBridgeEntry {
  Source: string;
  DetailType: string;
  Detail: string;
  Time: Date;
  EventBusName?: string;
}

/**
 * The EventBridge entries of one registry event, shaped like ECR's "ECR Image Action": one per
 * tag a push set (ECR sends one per tag), one without `image-tag` for a push by digest or a
 * manifest deleted, one for a tag deleted, one per pull count. `event-id` is the registry
 * event's id (with the tag, when a push set several), for rules' targets to dedupe on.
 */
export function eventBridgeEntries(event: RegistryEvent, busName?: string): EventBridgeEntry[] {
  const actionType = event.kind === 'push' ? 'PUSH' : event.kind === 'delete' ? 'DELETE' : 'PULL';
  const common = {
    result: 'SUCCESS',
    'action-type': actionType,
    'repository-name': event.repository,
    ...(event.digest ? { 'image-digest': event.digest } : {}),
    ...(event.mediaType ? { 'manifest-media-type': event.mediaType } : {}),
    ...(event.artifactType ? { 'artifact-media-type': event.artifactType } : {}),
    'registry-event-type': event.type,
    ...(event.size !== undefined ? { 'image-size': event.size } : {}),
    ...(event.subject ? { 'subject-digest': event.subject } : {}),
    ...(event.actor ? { actor: event.actor } : {}),
    ...(event.reason ? { 'deletion-reason': event.reason } : {}),
    ...(event.cachedFrom ? { 'cached-from': event.cachedFrom } : {}),
    ...(event.pulls !== undefined ? { 'pull-count': event.pulls, minute: event.minute } : {}),
  };
  const tags: (string | undefined)[] = event.tags.length > 0 ? event.tags : [undefined];
  return tags.map((tag) => ({
    Source: EVENT_SOURCE,
    DetailType: EVENT_DETAIL_TYPE,
    Time: new Date(event.time),
    ...(busName ? { EventBusName: busName } : {}),
    Detail: JSON.stringify({
      ...common,
      ...(tag !== undefined ? { 'image-tag': tag } : {}),
      'event-id': tags.length > 1 ? `${event.id}:${tag}` : event.id,
    }),
  }));
}
