# The upload gateway (docs/upload-gateway.md): the registry's handlers as a long-running
# server for upload bodies, on Fargate (ARM64) behind an ALB. CDK builds it as an image asset
# (lib/constructs/upload-gateway.ts); by hand:
#   docker buildx build --platform linux/arm64 -t upload-gateway .
#
# The build stage runs on the build machine's own platform (no emulation) and bundles the
# gateway into one ESM file with esbuild, as the Lambda functions are bundled; the bundle is
# plain JavaScript (hash-wasm carries its WebAssembly inline), so it runs on any platform.
FROM --platform=$BUILDPLATFORM node:22-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY functions ./functions
COPY registry ./registry
RUN npx esbuild functions/upload-gateway.ts --bundle --platform=node --format=esm --target=node22 \
      --main-fields=module,main --minify --keep-names --sourcemap --sources-content=false \
      "--banner:js=import { createRequire as __registryCreateRequire } from 'node:module'; const require = __registryCreateRequire(import.meta.url);" \
      --outfile=dist/upload-gateway.mjs

FROM node:22-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /src/dist/ ./
# The image's unprivileged user; the root file system can be read-only (the task sets it so).
USER node
EXPOSE 8080
CMD ["node", "--enable-source-maps", "upload-gateway.mjs"]
