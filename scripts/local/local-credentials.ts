/**
 * The key pair every local stand-in is called with. They do not check credentials, but the
 * SDK signs nothing without some, and s3rver accepts only its own pair. Kept apart from the
 * stand-ins so that a CLI can use it without loading s3rver.
 */
export const LOCAL_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;
