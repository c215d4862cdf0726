#!/usr/bin/env node
/**
 * The CDK app of the serverless OCI registry. Configured through cdk.json context or `-c key=value`;
 * every option is listed in docs/configuration.md.
 */
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { createRegistryStacks, deploymentEnvFromContext } from '../lib/registry-app.js';
import { registryOptionsInputFromContext, resolveRegistryOptions } from '../lib/registry-options.js';

const app = new App();
const env = deploymentEnvFromContext(app.node);
const options = resolveRegistryOptions(registryOptionsInputFromContext(app.node), env.region);

createRegistryStacks(app, { options, env });

// Synthesis fails on any AWS Solutions finding that is not acknowledged with a reason.
Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
