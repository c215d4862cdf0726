/**
 * Imported first by the local tools (npm start, admin, policy, gc): turns off the AWS SDK's
 * NodeVersionSupportWarning, a 9-line notice (emitted by @aws-sdk/core's
 * emitWarningIfUnsupportedVersion when a client is created) that SDK releases after early
 * January 2027 will need Node 22. The tools support Node 20 on purpose and the notice asks
 * nothing of their users, so it is noise on every run.
 *
 * Why not pin the SDK below the release that added it: that would freeze every AWS client at
 * an old version, security fixes included, to hide a message. This uses the switch the SDK
 * itself reads (AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED), only in these processes:
 * the Lambda functions run Node 22, where the SDK does not warn, and code under registry/
 * never sets it. A value the user set is left alone.
 */
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
