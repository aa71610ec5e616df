// Starts the real eventcast binary for the compatibility tests and stops it again.
//
// The server listens on 127.0.0.1 with an ephemeral port (--port 0). It writes the bound port to
// a port file (atomically, once listening) and its generated self-signed certificate to
// cert.pem; both live in a fresh temporary directory that stop() removes.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

const here = dirname(fileURLToPath(import.meta.url));
export const repoRoot = resolve(here, '..', '..');

/** EVENTCAST_BIN from the environment, else build/release/src/eventcast under the repo root. */
export function eventcastBin() {
    const fromEnv = process.env.EVENTCAST_BIN;
    if (fromEnv) return resolve(fromEnv);
    return join(repoRoot, 'build', 'release', 'src', 'eventcast');
}

export const API_KEY = 'da2-compattestkey0123456789abcdef';

/**
 * Spawns `eventcast serve` and waits until it listens. `extraArgs` are appended to the command
 * line; `env` adds (string) or removes (null) variables of the server's environment;
 * `logLevel` 'info' shows the access log in output().
 * @returns {Promise<{port:number, certPath:string, ca:Buffer, apiKey:string,
 *                    httpsUrl:string, wssUrl:string, wsUrl:string, host:string,
 *                    output:()=>string, stop:()=>Promise<void>}>}
 */
export async function startServer({ apiKey = API_KEY, extraArgs = [], startTimeoutMs = 10000,
                                    env: extraEnv = {}, logLevel = 'warn' } = {}) {
    const bin = eventcastBin();
    if (!existsSync(bin))
        throw new Error(`eventcast binary not found at ${bin}; build it or set EVENTCAST_BIN`);
    const dir = mkdtempSync(join(tmpdir(), 'eventcast-compat-'));
    const portFile = join(dir, 'port');
    const certPath = join(dir, 'cert.pem');
    const args = [
        'serve', '--host', '127.0.0.1', '--port', '0', '--port-file', portFile,
        '--api-key', apiKey, '--tls-self-signed-out', certPath,
        '--keepalive-ms', '60000', '--threads', '2', '--log-level', logLevel,
        ...extraArgs,
    ];
    // The server reads EVENTCAST_<OPTION> variables; keep a caller's environment from changing
    // what is under test (EVENTCAST_BIN is ours, not the server's, and is harmless).
    // `env` (an option) is applied last: a string sets a variable, null or undefined removes it.
    const env = Object.fromEntries(
        Object.entries(process.env).filter(([k]) => !k.startsWith('EVENTCAST_')));
    for (const [k, v] of Object.entries(extraEnv)) {
        if (v === null || v === undefined) delete env[k];
        else env[k] = String(v);
    }
    const child = spawn(bin, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const keep = (chunk) => {
        output += chunk.toString();
        if (output.length > 64 * 1024) output = output.slice(-64 * 1024);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    let exited = null;
    // If this test process ends without stop() (crash, uncaught error), do not leave the
    // server running: 'exit' handlers run synchronously, and kill() is synchronous.
    const killOnExit = () => { if (!exited) child.kill('SIGKILL'); };
    process.once('exit', killOnExit);
    const exitPromise = new Promise((res) => child.once('exit', (code, signal) => {
        exited = { code, signal };
        process.removeListener('exit', killOnExit);
        res(exited);
    }));

    const cleanupDir = () => rmSync(dir, { recursive: true, force: true });
    const kill = async () => {
        if (exited) return;
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
        await exitPromise;
        clearTimeout(timer);
    };

    const deadline = Date.now() + startTimeoutMs;
    let port = 0;
    while (!port) {
        if (exited) {
            cleanupDir();
            throw new Error(`eventcast exited early (${JSON.stringify(exited)}):\n${output}`);
        }
        if (Date.now() > deadline) {
            await kill();
            cleanupDir();
            throw new Error(`eventcast did not write ${portFile} within ${startTimeoutMs} ms:\n${output}`);
        }
        if (existsSync(portFile)) {
            const text = readFileSync(portFile, 'utf8').trim();
            if (/^\d+$/.test(text)) port = Number(text);
        }
        if (!port) await sleep(25);
    }
    if (!existsSync(certPath)) {
        await kill();
        cleanupDir();
        throw new Error(`eventcast listens on ${port} but wrote no certificate to ${certPath}`);
    }
    const ca = readFileSync(certPath);
    return {
        port,
        certPath,
        ca,
        apiKey,
        host: `localhost:${port}`,
        httpsUrl: `https://localhost:${port}/event`,
        wssUrl: `wss://localhost:${port}/event/realtime`,
        wsUrl: `ws://127.0.0.1:${port}/event/realtime`,
        output: () => output,
        stop: async () => {
            await kill();
            cleanupDir();
        },
    };
}
