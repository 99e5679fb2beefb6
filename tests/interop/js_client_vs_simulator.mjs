#!/usr/bin/env node
// The CometD project's JavaScript client (cometd + cometd-nodejs-client) against the GWS
// simulator: proves the simulator speaks Bayeux the way the official client expects.
//
//   1. log in over REST (GET /api/v2/me, Basic) -> JSESSIONID + CSRF token;
//   2. hand the session cookie to the CometD client, handshake, subscribe to
//      /v2/me/outbound and /me/internal (in a batch, from the /meta/handshake listener, as
//      the CometD documentation recommends);
//   3. cancel a record over REST and receive both CometD messages;
//   4. disrupt: by default make the simulator forget every CometD client
//      (POST /_simulator/forget-clients); with --disrupt stdin, print {"event": "disrupt"}
//      and wait for a line on stdin while the caller does something to the simulator
//      (forget the clients, restart it, ...);
//   5. the client must notice (402), handshake and subscribe again by itself; a second
//      cancel proves the messages flow again. When a handshake is refused with HTTP 401
//      (the GWS session is gone, e.g. after a restart) the script logs in again over REST,
//      as a GWS web application would, and lets the CometD client retry.
//
// Usage: GWS_PASSWORD=secret node js_client_vs_simulator.mjs --base-url http://127.0.0.1:8080
//            [--user agent1] [--records 11,14] [--deadline 20000] [--disrupt forget|stdin]
//            [--long-polling-only]
// Writes one JSON object per line on stdout ({"event": ...}); exits 0 when every step
// passed, 1 with an {"event": "failed"} line otherwise.

import { adapt } from "cometd-nodejs-client";

// CometD and the adapter log through console.log/info/debug: keep stdout for our JSON lines.
for (const level of ["log", "info", "debug"]) {
    console[level] = (...args) => console.error(...args);
}

function parseArgs(argv) {
    const options = {
        user: "agent1",
        records: [11, 14],
        deadline: 20000,
        baseUrl: null,
        disrupt: "forget",
        longPollingOnly: false,
    };
    for (let i = 0; i < argv.length; ++i) {
        const next = () => {
            if (i + 1 >= argv.length) {
                throw new Error(`${argv[i]} needs a value`);
            }
            return argv[++i];
        };
        switch (argv[i]) {
            case "--base-url":
                options.baseUrl = next().replace(/\/+$/, "");
                break;
            case "--user":
                options.user = next();
                break;
            case "--records":
                options.records = next().split(",").map((n) => Number.parseInt(n, 10));
                break;
            case "--deadline":
                options.deadline = Number.parseInt(next(), 10);
                break;
            case "--disrupt":
                options.disrupt = next();
                break;
            case "--long-polling-only":
                options.longPollingOnly = true;
                break;
            default:
                throw new Error(`unknown argument ${argv[i]}`);
        }
    }
    if (!options.baseUrl) {
        throw new Error("--base-url is required");
    }
    if (!["forget", "stdin"].includes(options.disrupt)) {
        throw new Error("--disrupt takes forget or stdin");
    }
    if (options.records.length !== 2 || options.records.some(Number.isNaN)) {
        throw new Error("--records takes two record handles, e.g. 11,14");
    }
    return options;
}

const options = parseArgs(process.argv.slice(2));
const password = process.env.GWS_PASSWORD;
if (!password) {
    throw new Error("set GWS_PASSWORD");
}
const started = Date.now();

function emit(event, fields) {
    process.stdout.write(JSON.stringify({ event, ms: Date.now() - started, ...fields }) + "\n");
}

// -- one cookie jar for REST and CometD (what a browser would have) -----------------------------

const jar = new Map(); // cookie name -> value
const cookieSources = new Map(); // cookie name -> "rest" | "cometd" (where it was last set)

function storeSetCookie(header, source) {
    const nameValue = header.split(";", 1)[0].trim();
    const equal = nameValue.indexOf("=");
    if (equal > 0) {
        const name = nameValue.slice(0, equal);
        jar.set(name, nameValue.slice(equal + 1));
        cookieSources.set(name, source);
    }
}

function cookieHeader() {
    return [...jar].map(([name, value]) => `${name}=${value}`).join("; ");
}

// -- REST ------------------------------------------------------------------------------------------

const basic = "Basic " + Buffer.from(`${options.user}:${password}`).toString("base64");
let csrf = null; // [header name, token]

async function rest(method, path, body, { withBasic = false } = {}) {
    const headers = { Accept: "application/json" };
    if (withBasic) {
        headers.Authorization = basic;
    }
    if (jar.size) {
        headers.Cookie = cookieHeader();
    }
    if (method !== "GET" && csrf) {
        headers[csrf[0]] = csrf[1];
    }
    if (body !== undefined) {
        headers["Content-Type"] = "application/json";
    }
    const response = await fetch(options.baseUrl + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
    });
    for (const header of response.headers.getSetCookie()) {
        storeSetCookie(header, "rest");
    }
    const name = response.headers.get("X-CSRF-HEADER");
    const token = response.headers.get("X-CSRF-TOKEN");
    if (name && token) {
        csrf = [name, token];
    }
    const text = await response.text();
    let json = null;
    try {
        json = JSON.parse(text);
    } catch {
        // not JSON: reported below through the status
    }
    return { status: response.status, json, text };
}

// -- waiting for things ----------------------------------------------------------------------------

const waiters = [];

function notify() {
    for (const waiter of [...waiters]) {
        if (waiter.condition()) {
            waiters.splice(waiters.indexOf(waiter), 1);
            waiter.resolve();
        }
    }
}

function until(what, condition) {
    if (condition()) {
        return Promise.resolve();
    }
    return new Promise((resolve) => {
        waiters.push({ what, condition, resolve });
    });
}

// -- the CometD client -------------------------------------------------------------------------------

adapt({
    cookies: {
        storeCookie(uri, header, callback) {
            storeSetCookie(header, "cometd");
            callback();
        },
        retrieveCookies(context, uri, callback) {
            callback(null, [...jar].map(([name, value]) => `${name}=${value}`));
        },
    },
});
// cometd reads window.* at import time: import it after adapt().
const { CometD } = await import("cometd");

const cometd = new CometD();
const state = {
    handshakes: [], // {successful, reestablish, error}
    subscribedRounds: 0,
    connected: false,
    connectFailures: [],
    received: [], // {channel, data}
};
let pendingSubscriptions = 0;
let relogging = false;
const cometdHeaders = {};
if (options.longPollingOnly) {
    // GWS supports HTTP long-polling only (gws-outbound.md 4.1).
    cometd.unregisterTransport("websocket");
}

cometd.addListener("/meta/handshake", (message) => {
    state.handshakes.push({
        successful: message.successful === true,
        reestablish: message.reestablish === true,
        error: message.error,
    });
    const httpCode = message.failure && message.failure.httpCode;
    emit("handshake", {
        successful: message.successful === true,
        reestablish: message.reestablish === true,
        error: message.error,
        httpCode,
        transport: cometd.getTransport() && cometd.getTransport().type,
        clientId: message.clientId,
    });
    if (!message.successful && httpCode === 401 && !relogging) {
        // The GWS session is gone: log in again; the client retries the handshake itself.
        relogging = true;
        login()
            .then(() => emit("relogged-in", { cookies: [...jar.keys()] }))
            .catch((error) => emit("relogin-failed", { error: String(error) }))
            .finally(() => {
                relogging = false;
            });
    }
    if (message.successful) {
        // Subscriptions are cleared by every handshake: (re)subscribe here, in one batch.
        pendingSubscriptions = 2;
        cometd.batch(() => {
            for (const channel of ["/v2/me/outbound", "/me/internal"]) {
                cometd.subscribe(channel, onMessage, (reply) => {
                    emit("subscribe", { channel, successful: reply.successful, error: reply.error });
                    if (reply.successful && --pendingSubscriptions === 0) {
                        state.subscribedRounds += 1;
                    }
                    notify();
                });
            }
        });
    }
    notify();
});

cometd.addListener("/meta/connect", (message) => {
    const wasConnected = state.connected;
    state.connected = message.successful === true;
    if (!message.successful) {
        state.connectFailures.push(message.error || (message.failure && message.failure.reason));
        emit("connect-failed", {
            error: message.error,
            advice: message.advice,
            reason: message.failure && message.failure.reason,
        });
    } else if (!wasConnected) {
        emit("connected", {});
    }
    notify();
});

function onMessage(message) {
    state.received.push({ channel: message.channel, data: message.data });
    const data = message.data || {};
    emit("message", {
        channel: message.channel,
        messageType: data.messageType,
        notificationType: data.notificationType,
        referenceId: data.referenceId,
        record: data.record,
        userData: data.userData,
        deviceId: data.deviceId,
    });
    notify();
}

// -- the scenario --------------------------------------------------------------------------------

let step = "start";

async function cancelAndReceive(round, handle, devicePath) {
    step = `cancel round ${round}`;
    const referenceId = `js-${round}-${Date.now().toString(36)}`;
    const answer = await rest("POST", `/api/v2/me/outbound-records/${handle}`, {
        operationName: "CancelRecord",
        applicationId: 134,
        campaignName: "Campaign1",
        callingList: "CallingList1",
        devicePath,
        chainAttribute: "RecordOnly",
        referenceId,
    });
    emit("cancel-posted", { round, handle, referenceId, status: answer.status, body: answer.json });
    if (answer.status !== 200 || !answer.json || answer.json.statusCode !== 0) {
        throw new Error(`cancel of ${handle} refused: HTTP ${answer.status} ${answer.text}`);
    }
    step = `messages of round ${round}`;
    const outbound = () =>
        state.received.find(
            (m) =>
                m.channel === "/v2/me/outbound" &&
                m.data.messageType === "OutboundRecordMessage" &&
                m.data.referenceId === referenceId,
        );
    const userEvent = () =>
        state.received.find(
            (m) =>
                m.channel === "/me/internal" &&
                m.data.messageType === "DeviceUserEventMessage" &&
                m.data.userData &&
                m.data.userData.GSW_RECORD_HANDLE === handle,
        );
    await until(step, () => outbound() && userEvent());
    emit("acknowledged", {
        round,
        handle,
        referenceId,
        notificationType: outbound().data.notificationType,
        userEvent: userEvent().data.userData.GSW_USER_EVENT,
    });
}

async function login() {
    const me = await rest("GET", "/api/v2/me", undefined, { withBasic: true });
    if (me.status !== 200 || !me.json || me.json.statusCode !== 0) {
        throw new Error(`login refused: HTTP ${me.status} ${me.text}`);
    }
    // The CometD client sends these headers on every request (same object, updated in place).
    for (const name of Object.keys(cometdHeaders)) {
        delete cometdHeaders[name];
    }
    if (csrf) {
        cometdHeaders[csrf[0]] = csrf[1];
    }
}

function stdinLine() {
    return new Promise((resolve, reject) => {
        let text = "";
        const onData = (chunk) => {
            text += chunk;
            if (text.includes("\n")) {
                process.stdin.off("data", onData);
                process.stdin.pause();
                resolve(text.split("\n", 1)[0]);
            }
        };
        process.stdin.setEncoding("utf8");
        process.stdin.on("data", onData);
        process.stdin.once("end", () => reject(new Error("stdin closed")));
        process.stdin.resume();
    });
}

async function scenario() {
    step = "login";
    await login();
    emit("logged-in", { cookies: [...jar.keys()], csrf: csrf !== null });

    step = "devices";
    const devices = await rest("GET", "/api/v2/me/devices?fields=*");
    const device = devices.json && devices.json.devices && devices.json.devices[0];
    if (!device || !device.id) {
        throw new Error(`no device: HTTP ${devices.status} ${devices.text}`);
    }
    const devicePath = `/devices/${device.id}`;
    emit("device", { devicePath });

    step = "handshake";
    cometd.configure({
        url: options.baseUrl + "/api/v2/notifications",
        logLevel: "warn",
        requestHeaders: cometdHeaders,
    });
    cometd.handshake();
    await until(step, () => state.subscribedRounds >= 1 && state.connected);
    emit("ready", {
        round: 1,
        transport: cometd.getTransport().type,
        cookies: Object.fromEntries(cookieSources),
    });

    await cancelAndReceive(1, options.records[0], devicePath);

    step = "disrupt";
    const handshakesBefore = state.handshakes.length;
    if (options.disrupt === "forget") {
        const forgotten = await rest("POST", "/_simulator/forget-clients", {});
        emit("forgotten", { status: forgotten.status, body: forgotten.json });
        if (forgotten.status !== 200) {
            throw new Error(`forget-clients: HTTP ${forgotten.status} ${forgotten.text}`);
        }
    } else {
        emit("disrupt", {});
        await stdinLine();
    }
    const disruptedAt = Date.now();

    step = "recovery";
    await until(
        step,
        () =>
            state.handshakes.length > handshakesBefore &&
            state.handshakes[state.handshakes.length - 1].successful &&
            state.subscribedRounds >= 2 &&
            state.connected,
    );
    emit("recovered", {
        seconds: (Date.now() - disruptedAt) / 1000,
        transport: cometd.getTransport().type,
        connectFailures: state.connectFailures,
        handshakes: state.handshakes.length,
    });

    await cancelAndReceive(2, options.records[1], devicePath);

    step = "disconnect";
    await new Promise((resolve) => {
        cometd.disconnect((reply) => {
            emit("disconnected", { successful: reply.successful });
            resolve();
        });
    });
}

const deadline = setTimeout(() => {
    emit("failed", { step, error: `deadline of ${options.deadline} ms passed` });
    process.exit(1);
}, options.deadline);

try {
    await scenario();
    clearTimeout(deadline);
    emit("done", {});
    process.exit(0);
} catch (error) {
    emit("failed", { step, error: String(error && error.stack ? error.stack : error) });
    process.exit(1);
}
