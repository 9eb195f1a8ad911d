# One image for every service: `usagectl run <service>` picks which.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json turbo.json tsconfig.base.json tsconfig.json biome.json ./
# npm ci applies them (postinstall: patch-package).
COPY patches ./patches
COPY packages ./packages
COPY services ./services
COPY schemas ./schemas
COPY infra ./infra
RUN npm ci && npx turbo run build && npm prune --omit=dev

FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY --from=build /app /app
USER node
ENTRYPOINT ["node", "packages/cli/dist/bin.js"]
CMD ["run", "pricing"]
