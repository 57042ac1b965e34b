// A Node app with state: counts visits in /data/counter.txt, the app's volume, so the count
// survives deployments and restarts. Without a writable /data it counts in memory.
const fs = require("fs");
const http = require("http");
const path = require("path");

const port = Number(process.env.PORT) || 3000;
const counterFile = path.join(process.env.DATA_DIR || "/data", "counter.txt");

let count = 0;
let persisted = false;
try {
  count = Number.parseInt(fs.readFileSync(counterFile, "utf8"), 10) || 0;
} catch {
  // No counter yet, or no /data: start at 0.
}

function save() {
  try {
    // Write then rename, so a crash never leaves a half-written counter.
    fs.writeFileSync(counterFile + ".tmp", String(count));
    fs.renameSync(counterFile + ".tmp", counterFile);
    persisted = true;
  } catch {
    persisted = false;
  }
}

const server = http.createServer((req, res) => {
  if (req.url === "/healthz") {
    res.writeHead(200, { "Content-Type": "text/plain" });
    res.end("ok\n");
    return;
  }
  if (req.url !== "/") {
    res.writeHead(404, { "Content-Type": "text/plain" });
    res.end("not found\n");
    return;
  }
  count += 1;
  save();
  res.writeHead(200, { "Content-Type": "text/plain; charset=utf-8" });
  res.end(
    `Hello from Kiln! This page was visited ${count} time${count === 1 ? "" : "s"}.\n` +
      (persisted ? `(counted in ${counterFile})\n` : "(counted in memory: /data is not writable)\n"),
  );
});

server.listen(port, () => console.log(`node counter listening on port ${port}, count ${count}`));

process.on("SIGTERM", () => server.close(() => process.exit(0)));
