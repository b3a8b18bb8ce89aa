FROM node:20-bookworm-slim
WORKDIR /app
COPY package.json package-lock.json ./
# The client package is a workspace of the project: npm ci links it, so its manifest comes first.
COPY protocol/package.json ./protocol/
RUN npm ci --omit=dev --no-audit --no-fund
COPY server ./server
COPY protocol ./protocol
COPY sql ./sql
COPY web ./web
# The server runs built, with the heap settings of package.json's start script (see README).
COPY scripts/build-server.ts ./scripts/
RUN npx tsx scripts/build-server.ts
ENV HOST=0.0.0.0 PORT=8080 NODE_ENV=production
EXPOSE 8080
CMD ["node", "--enable-source-maps", "--max-semi-space-size=4", "--heap-growing-percent=10", "dist/msr.mjs"]
