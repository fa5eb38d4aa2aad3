// Preloaded into `dcn start` processes by `dcn bench --cpu-prof` (NODE_OPTIONS=--import=<this file>), because Node
// refuses --cpu-prof in NODE_OPTIONS and `dcn devnet` starts its nodes itself. SIGUSR2 starts the inspector's
// sampling profiler (1 ms, as --cpu-prof); the next SIGUSR2 (or exit) stops it and writes
// CPU.<pid>.<n>.cpuprofile into $DCN_BENCH_CPU_PROF_DIR. The bench signals at the start and end of each measured run,
// so a profile holds the loaded window only, not startup or setup. Plain JavaScript: it loads before tsx.
import { writeFileSync } from "node:fs";
import { Session } from "node:inspector";
import { join } from "node:path";

const dir = process.env.DCN_BENCH_CPU_PROF_DIR;
if (dir !== undefined && dir !== "" && process.argv.includes("start")) {
  const session = new Session();
  session.connect();
  session.post("Profiler.enable");
  session.post("Profiler.setSamplingInterval", { interval: 1000 });
  let running = false;
  let written = 0;
  const stop = () => {
    if (!running) return;
    running = false;
    // The in-thread session answers synchronously, so this also works from the exit handler.
    session.post("Profiler.stop", (error, result) => {
      if (error === null && result?.profile !== undefined) {
        writeFileSync(join(dir, `CPU.${process.pid}.${written++}.cpuprofile`), JSON.stringify(result.profile));
      }
    });
  };
  process.on("SIGUSR2", () => {
    if (running) stop();
    else {
      session.post("Profiler.start");
      running = true;
    }
  });
  process.once("exit", stop);
}
