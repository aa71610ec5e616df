// Starts the real eventcast binary for the browser tests and stops it again (adapted from
// tests/compat/server.mjs).
//
// The server listens on 127.0.0.1, on an ephemeral port (--port 0) unless `port` is given (to
// start it again where a page is trying to reconnect). It writes the bound port to a port file
// once listening and its generated self-signed certificate to cert.pem; both live in a fresh
// temporary directory that stop() removes.
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

export const API_KEY = 'da2-webtestkey0123456789abcdef';

/**
 * Spawns `eventcast serve` and waits until it listens.
 * @returns {Promise<{port:number, apiKey:string, httpUrl:string, httpsUrl:string,
 *                    output:()=>string, kill:(signal?:string)=>Promise<void>,
 *                    stop:()=>Promise<void>}>}
 */
export async function startServer({ apiKey = API_KEY, port = 0, paceMs = 20, extraArgs = [],
                                    startTimeoutMs = 10000 } = {}) {
    const bin = eventcastBin();
    if (!existsSync(bin))
        throw new Error(`eventcast binary not found at ${bin}; build it or set EVENTCAST_BIN`);
    const dir = mkdtempSync(join(tmpdir(), 'eventcast-web-'));
    const portFile = join(dir, 'port');
    const certPath = join(dir, 'cert.pem');
    const args = [
        'serve', '--host', '127.0.0.1', '--port', String(port), '--port-file', portFile,
        '--api-key', apiKey, '--tls-self-signed-out', certPath,
        '--demo-pace-ms', String(paceMs), '--threads', '2', '--log-level', 'warn',
        ...extraArgs,
    ];
    // The server reads EVENTCAST_<OPTION> variables: keep the caller's out of what is tested.
    const env = Object.fromEntries(
        Object.entries(process.env).filter(([k]) => !k.startsWith('EVENTCAST_')));
    const child = spawn(bin, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const keep = (chunk) => {
        output += chunk.toString();
        if (output.length > 64 * 1024) output = output.slice(-64 * 1024);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    let exited = null;
    // If this test process ends without stop(), do not leave the server running.
    const killOnExit = () => { if (!exited) child.kill('SIGKILL'); };
    process.once('exit', killOnExit);
    const exitPromise = new Promise((res) => child.once('exit', (code, signal) => {
        exited = { code, signal };
        process.removeListener('exit', killOnExit);
        res(exited);
    }));
    const cleanupDir = () => rmSync(dir, { recursive: true, force: true });
    const kill = async (signal = 'SIGTERM') => {
        if (exited) return;
        child.kill(signal);
        const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
        await exitPromise;
        clearTimeout(timer);
    };

    const deadline = Date.now() + startTimeoutMs;
    let bound = 0;
    while (!bound) {
        if (exited) {
            cleanupDir();
            throw new Error(`eventcast exited early (${JSON.stringify(exited)}):\n${output}`);
        }
        if (Date.now() > deadline) {
            await kill('SIGKILL');
            cleanupDir();
            throw new Error(`eventcast did not write ${portFile} within ${startTimeoutMs} ms:\n${output}`);
        }
        if (existsSync(portFile)) {
            const text = readFileSync(portFile, 'utf8').trim();
            if (/^\d+$/.test(text)) bound = Number(text);
        }
        if (!bound) await sleep(25);
    }
    return {
        port: bound,
        apiKey,
        httpUrl: `http://127.0.0.1:${bound}/`,
        httpsUrl: `https://localhost:${bound}/`,
        output: () => output,
        kill,
        stop: async () => {
            await kill();
            cleanupDir();
        },
    };
}
