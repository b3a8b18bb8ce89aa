import { createApp } from '../../server/app.js';
import { loadConfig } from '../../server/config.js';

// The server with ingest on, killed by SIGKILL right after its first batch is committed to the
// database and before its Kafka offsets are: the crash drill of test/integration/ingest.
await createApp(loadConfig(), {
  ingest: {
    afterDatabaseCommit: () => {
      process.kill(process.pid, 'SIGKILL');
    },
  },
});
