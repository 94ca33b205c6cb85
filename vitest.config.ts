import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Integration tests start real ffmpeg, RTSP and MQTT processes; two cores do not take more in parallel.
    maxWorkers: 2,
    minWorkers: 1,
  },
});
