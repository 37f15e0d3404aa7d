// The live view in a real browser: runs `troupe run GRAPH --http 127.0.0.1:0
// --report REPORT`, opens the page it announces in headless Chromium (the
// system's, via executablePath: puppeteer-core downloads nothing), and checks
// what an operator would see: the counts move while the graph runs, a click
// on a node in the picture shows its detail, the status reaches `completed`,
// and the page's final figures are the report's. Saves a screenshot.
//
// usage: node live_view.mjs --troupe BIN --graph YAML --out DIR
//                           [--chromium /usr/bin/chromium]
// Prints one line per check; exits 0 when all pass, 1 otherwise, 77 to skip.
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import puppeteer from "puppeteer-core";

const args = {};
for (let i = 2; i < process.argv.length; i += 2)
  args[process.argv[i].replace(/^--/, "")] = process.argv[i + 1];
const chromium = args.chromium || "/usr/bin/chromium";
const out = path.resolve(args.out || ".");
fs.mkdirSync(out, { recursive: true });
const report = path.join(out, "live_view_report.json");
const shot = path.join(out, "live_view.png");

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let failed = 0;
function check(ok, what) {
  console.log((ok ? "ok   " : "FAIL ") + what);
  if (!ok) failed++;
  return ok;
}

// The run: its stderr names the live view's address.
function startRun() {
  fs.rmSync(report, { force: true });
  const proc = spawn(args.troupe, ["run", args.graph, "--http", "127.0.0.1:0",
    "--report", report, "--no-progress"], { cwd: out, stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  const exited = new Promise((resolve) => proc.on("exit", (code) => resolve(code)));
  const url = new Promise((resolve, reject) => {
    proc.stderr.on("data", (d) => {
      stderr += d;
      // The whole line: a chunk may end inside the address.
      const m = /troupe: live view at (http:\/\/\S+)\n/.exec(stderr);
      if (m) resolve(m[1]);
    });
    exited.then((code) => reject(new Error(`troupe exited ${code} before announcing the live view: ${stderr.trim().split("\n").slice(-3).join(" | ")}`)));
    setTimeout(() => reject(new Error("no live view announced within 10 s")), 10000);
  });
  return { proc, url, exited, stderr: () => stderr };
}

async function figures(page) {
  return page.evaluate(() => {
    const nodes = {};
    for (const tr of document.querySelectorAll("#nodes tbody tr[data-node]")) {
      const n = {};
      for (const td of tr.querySelectorAll("[data-field]")) n[td.dataset.field] = td.textContent;
      nodes[tr.dataset.node] = n;
    }
    const totals = {};
    for (const el of document.querySelectorAll("#totals [data-field]"))
      totals[el.dataset.field] = el.textContent;
    return { status: document.querySelector("#status").textContent, nodes, totals };
  });
}

async function main() {
  // The browser first: its first start on a fresh machine (profile, font
  // cache) can take longer than the paced run, which would then end before
  // the page sees it running.
  let browser, run;
  try {
    browser = await puppeteer.launch({
      executablePath: chromium,
      headless: true,
      args: ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
    });
    run = startRun();
    const url = await run.url;
    check(/^http:\/\/127\.0\.0\.1:\d+\/$/.test(url), `live view announced at ${url}`);
    const page = await browser.newPage();
    await page.setViewport({ width: 1400, height: 1000 });
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
    const requests = [];
    page.on("request", (r) => requests.push(r.url()));
    await page.goto(url, { waitUntil: "domcontentloaded" });

    // The picture arrives inline, a group per node.
    await page.waitForSelector('#picture svg g[id^="node-"]', { timeout: 10000 });
    const names = await page.$$eval('#picture svg g[id^="node-"]', (gs) => gs.map((g) => g.id.slice(5)));
    check(names.length >= 3, `the picture shows ${names.length} nodes: ${names.join(", ")}`);

    // The counts move while the graph runs.
    await page.waitForFunction(() => document.querySelector("#status").textContent === "running",
      { timeout: 10000 });
    // A stage in the middle (the graph's `upper`), else the first node.
    const sink = names.includes(args.click || "upper") ? (args.click || "upper") : names[0];
    // Watched for up to 3 s: a change seen while the status still reads
    // running (one that arrives with the final figures proves nothing).
    const first = await figures(page);
    let second = first, moved = false;
    for (let waited = 0; waited < 3000 && !moved && second.status === "running"; waited += 200) {
      await sleep(200);
      second = await figures(page);
      moved = second.status === "running" && Object.keys(second.nodes).some((n) =>
        second.nodes[n].in !== first.nodes[n]?.in || second.nodes[n].out !== first.nodes[n]?.out);
    }
    check(moved, `the counts move (source_records ${first.totals.source_records} -> ` +
      `${second.totals.source_records}, status ${second.status})`);
    const rates = Object.values(second.nodes).map((n) => Number(n.rate));
    check(rates.some((r) => r > 0), `a node shows records/s (${rates.join(", ")})`);
    const badges = await page.$$eval("#picture text.badge", (ts) => ts.length);
    check(badges >= names.length, `the picture carries a badge per node (${badges})`);

    // A click on a node in the picture shows its detail.
    await page.click(`#picture g#node-${sink}`);
    await page.waitForFunction((n) => document.querySelector("#detail").getAttribute("data-node") === n
      && document.querySelector("#detail").textContent.includes("latency"), { timeout: 5000 }, sink);
    const detail = await page.$eval("#detail", (d) => d.textContent);
    check(detail.includes(sink) && /p50/.test(detail), `#detail shows ${sink}: ${detail.slice(0, 80).replace(/\s+/g, " ")}...`);

    // The end: the status, then the page's final figures equal the report.
    await page.waitForFunction(() => document.querySelector("#status").textContent !== "running",
      { timeout: 60000 });
    const last = await figures(page);
    check(last.status === "completed", `#status reads ${last.status}`);
    const code = await Promise.race([run.exited, sleep(20000).then(() => "timeout")]);
    check(code === 0, `troupe exited ${code}`);
    const rep = JSON.parse(fs.readFileSync(report, "utf8"));
    for (const k of ["source_records", "sink_records", "dead_lettered", "restarts"])
      check(String(rep.totals[k]) === last.totals[k], `total ${k}: page ${last.totals[k]}, report ${rep.totals[k]}`);
    let compared = 0;
    for (const [name, n] of Object.entries(rep.nodes))
      for (const k of ["in", "out", "in_flight", "dead_lettered", "errors", "restarts"]) {
        compared++;
        if (String(n[k]) !== last.nodes[name]?.[k])
          check(false, `${name}.${k}: page ${last.nodes[name]?.[k]}, report ${n[k]}`);
      }
    console.log(`     (${compared} node figures compared with the report)`);
    check(Object.keys(rep.nodes).every((name) => last.nodes[name]), "every node of the report is on the page");
    const dead = await page.$$eval("#dead-letters li", (ls) => ls.map((l) => l.textContent));
    check(rep.totals.dead_lettered === 0 || dead.length > 0,
      `the dead letters' last reasons are listed (${dead.length}${dead.length ? ": " + dead[0].slice(0, 60) : ""})`);
    const external = requests.filter((u) => !u.startsWith(url.replace(/\/$/, "")));
    check(external.length === 0, `the page fetches nothing elsewhere (${external.join(", ")})`);
    check(errors.length === 0, `no script errors (${errors.join(" | ")})`);
    await page.screenshot({ path: shot, fullPage: true });
    console.log(`screenshot: ${shot}`);
  } catch (e) {
    check(false, String(e && e.stack || e));
  } finally {
    if (browser) await browser.close();
    if (run && run.proc.exitCode === null) run.proc.kill("SIGKILL");
  }
  console.log(failed ? `${failed} failed` : "all passed");
  process.exit(failed ? 1 : 0);
}

main();
