#!/usr/bin/env node
// A small GWS stand-in built on the CometD project's NodeJS server (cometd-nodejs-server).
//
// It speaks just enough GWS REST for the plugin to start (GET /api/v2/me with Basic
// credentials -> JSESSIONID cookie + CSRF headers) and serves the Bayeux endpoint at
// /api/v2/notifications with the real CometD server implementation. GWS runs the CometD Java
// server; this one follows the same protocol rules (BAYEUX_BROWSER cookie, held
// /meta/connect, 402::session_unknown with advice reconnect=handshake, batching).
//
// Usage: node gws_standin.cjs [--port 0] [--user agent1:secret]... [--timeout 30000]
//                             [--interval 0] [--max-sessions-per-browser 1]
//                             [--multi-session-interval 2000] [--verbose]
//                             [--refuse-channel /me/internal]...
// (the CometD server options of the same names; times in milliseconds; --refuse-channel makes
// the server's security policy deny subscriptions to that channel: 403::subscribe_denied).
// First stdout line: "GWS stand-in listening on http://127.0.0.1:<port>".
//
// Control endpoints (loopback only, no auth), all JSON:
//   POST /_control/publish        {"messages": [{"channel": c, "data": d}, ...], "batch": bool}
//   POST /_control/drop-sessions  {"how": "expire" | "disconnect"}
//   POST /_control/drop-http-sessions
//   POST /_control/passwords      {"<user>": "<new password>", ...}
//   POST /_control/refuse-channels {"channels": ["/me/internal", ...]}  (replaces the list)
//   GET  /_control/state
"use strict";

const crypto = require("node:crypto");
const http = require("node:http");
const { createCometDServer } = require("cometd-nodejs-server");

const NOTIFICATIONS = "/api/v2/notifications";

function parseArgs(argv) {
    const options = {
        port: 0,
        users: new Map(),
        timeout: 30000,
        interval: 0,
        maxSessionsPerBrowser: 1,
        multiSessionInterval: 2000,
        verbose: false,
        refusedChannels: new Set(),
    };
    for (let i = 0; i < argv.length; ++i) {
        const arg = argv[i];
        const value = () => {
            if (i + 1 >= argv.length) {
                throw new Error(`${arg} needs a value`);
            }
            return argv[++i];
        };
        switch (arg) {
            case "--port":
                options.port = Number.parseInt(value(), 10);
                break;
            case "--user": {
                const spec = value();
                const colon = spec.indexOf(":");
                if (colon <= 0) {
                    throw new Error("--user takes name:password");
                }
                options.users.set(spec.slice(0, colon), spec.slice(colon + 1));
                break;
            }
            case "--timeout":
                options.timeout = Number.parseInt(value(), 10);
                break;
            case "--interval":
                options.interval = Number.parseInt(value(), 10);
                break;
            case "--max-sessions-per-browser":
                options.maxSessionsPerBrowser = Number.parseInt(value(), 10);
                break;
            case "--multi-session-interval":
                options.multiSessionInterval = Number.parseInt(value(), 10);
                break;
            case "--verbose":
                options.verbose = true;
                break;
            case "--refuse-channel":
                options.refusedChannels.add(value());
                break;
            default:
                throw new Error(`unknown argument ${arg}`);
        }
    }
    if (options.users.size === 0) {
        options.users.set("agent1", "secret");
    }
    return options;
}

const options = parseArgs(process.argv.slice(2));

function log(...args) {
    if (options.verbose) {
        process.stderr.write(`[standin] ${args.join(" ")}\n`);
    }
}

// -- HTTP sessions (what GWS keeps per JSESSIONID) ----------------------------------------------

const httpSessions = new Map(); // JSESSIONID -> {user, csrf}

function parseCookies(header) {
    const cookies = {};
    for (const part of (header || "").split(";")) {
        const equal = part.indexOf("=");
        if (equal > 0) {
            cookies[part.slice(0, equal).trim()] = part.slice(equal + 1).trim();
        }
    }
    return cookies;
}

function basicUser(request) {
    const header = request.headers.authorization || "";
    const match = /^Basic\s+(\S+)$/i.exec(header);
    if (!match) {
        return null;
    }
    const decoded = Buffer.from(match[1], "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    if (colon <= 0) {
        return null;
    }
    const name = decoded.slice(0, colon);
    const expected = options.users.get(name);
    if (expected === undefined) {
        return null;
    }
    const given = Buffer.from(decoded.slice(colon + 1));
    const wanted = Buffer.from(expected);
    if (given.length !== wanted.length || !crypto.timingSafeEqual(given, wanted)) {
        return null;
    }
    return name;
}

function sessionOf(request) {
    const id = parseCookies(request.headers.cookie).JSESSIONID;
    const session = id === undefined ? undefined : httpSessions.get(id);
    return session === undefined ? null : { id, ...session };
}

function newHttpSession(response, user, via) {
    stats.httpSessionsIssued[via] += 1;
    const id = crypto.randomBytes(16).toString("hex").toUpperCase();
    const session = { user, csrf: crypto.randomUUID() };
    httpSessions.set(id, session);
    appendSetCookie(response, `JSESSIONID=${id}; Path=/; HttpOnly`);
    return { id, ...session };
}

function appendSetCookie(response, value) {
    const existing = response.getHeader("Set-Cookie");
    const list = existing === undefined ? [] : [].concat(existing);
    list.push(value);
    originalSetHeader.call(response, "Set-Cookie", list);
}

// cometd-nodejs-server sets BAYEUX_BROWSER with setHeader("Set-Cookie", ...), which would
// replace a JSESSIONID cookie set on the same response: merge instead (as Jetty does).
const originalSetHeader = http.ServerResponse.prototype.setHeader;

function mergingSetHeader(name, value) {
    if (String(name).toLowerCase() === "set-cookie") {
        for (const cookie of [].concat(value)) {
            appendSetCookie(this, cookie);
        }
        return this;
    }
    return originalSetHeader.call(this, name, value);
}

function sendJson(response, status, body, headers) {
    const text = JSON.stringify(body);
    response.writeHead(status, {
        "Content-Type": "application/json",
        "Content-Length": Buffer.byteLength(text),
        ...(headers || {}),
    });
    response.end(text);
}

function readJson(request) {
    return new Promise((resolve, reject) => {
        let text = "";
        request.setEncoding("utf8");
        request.on("data", (chunk) => {
            text += chunk;
        });
        request.on("end", () => {
            try {
                resolve(text ? JSON.parse(text) : {});
            } catch (error) {
                reject(error);
            }
        });
        request.on("error", reject);
    });
}

// -- the CometD server -------------------------------------------------------------------------

const cometd = createCometDServer({
    timeout: options.timeout,
    interval: options.interval,
    maxSessionsPerBrowser: options.maxSessionsPerBrowser,
    multiSessionInterval: options.multiSessionInterval,
    logLevel: "info",
});
const bayeuxSessions = new Set();
const stats = {
    handshakes: [], // {auth: "cookie" | "basic", clientId, at}
    bayeuxRequests: { cookie: 0, basic: 0 }, // how each Bayeux HTTP request was authenticated
    httpSessionsIssued: { rest: 0, bayeux: 0 }, // where each JSESSIONID was handed out
    connects: 0,
    subscribes: [],
    disconnects: 0,
    denied: 0,
    refusedSubscribes: [], // {subscription, clientId}: denied by --refuse-channel
};

cometd.addListener("sessionAdded", (session) => {
    bayeuxSessions.add(session);
});
cometd.addListener("sessionRemoved", (session) => {
    bayeuxSessions.delete(session);
});

// GWS binds the Bayeux session to the HTTP session: a handshake is allowed only with a live
// JSESSIONID or valid Basic credentials (the HTTP handler has already checked; this records
// which one it was and refuses anything else).
cometd.policy = {
    canHandshake(session, message, callback) {
        const request = cometd.context.request;
        const auth = request && request.gwsAuth;
        if (!auth) {
            stats.denied += 1;
            callback(null, false);
            return;
        }
        stats.handshakes.push({ auth, clientId: session.id, at: Date.now() });
        log("handshake", auth, session.id);
        callback(null, true);
    },
    // A server that does not let this client subscribe to some channels (403::subscribe_denied).
    canSubscribe(session, message, channel, callback) {
        if (options.refusedChannels.has(channel.name)) {
            stats.refusedSubscribes.push({ subscription: channel.name, clientId: session.id });
            log("subscription refused", channel.name, session.id);
            callback(null, false);
            return;
        }
        callback(null, true);
    },
};

cometd.addExtension({
    incoming(server, session, message, callback) {
        log("  <-", message.channel, message.clientId || "", JSON.stringify(message.advice || {}));
        if (message.channel === "/meta/connect") {
            stats.connects += 1;
        } else if (message.channel === "/meta/subscribe") {
            stats.subscribes.push({ subscription: message.subscription, clientId: message.clientId });
        } else if (message.channel === "/meta/disconnect") {
            stats.disconnects += 1;
        }
        callback(null, true);
    },
    outgoing(server, sender, session, message, callback) {
        if (message.channel && message.channel.startsWith("/meta/")) {
            const outcome = message.successful ? "ok" : message.error;
            log("  ->", message.channel, outcome, JSON.stringify(message.advice || {}));
        } else {
            log("  ->", message.channel, "(message)");
        }
        callback(null, message);
    },
});

function handleNotifications(request, response) {
    const session = sessionOf(request);
    if (session !== null) {
        request.gwsAuth = "cookie";
    } else {
        const user = basicUser(request);
        if (user === null) {
            stats.denied += 1;
            sendJson(response, 401, { statusCode: 20, statusMessage: "User not authenticated" });
            return;
        }
        // Like GWS behind Basic authentication: the request opens an HTTP session.
        newHttpSession(response, user, "bayeux");
        request.gwsAuth = "basic";
    }
    stats.bayeuxRequests[request.gwsAuth] += 1;
    response.setHeader = mergingSetHeader;
    cometd.handle(request, response);
}

// Wraps publish() of every subscriber in its batch, so that several messages reach a client
// in one /meta/connect response (GWS publishes the two messages of an acknowledgement
// back to back).
function inBatches(sessions, fn) {
    if (sessions.length === 0) {
        fn();
        return;
    }
    sessions[0].batch(() => inBatches(sessions.slice(1), fn));
}

// -- REST ----------------------------------------------------------------------------------------

function handleMe(request, response) {
    const user = basicUser(request);
    let session = sessionOf(request);
    if (user !== null && (session === null || session.user !== user)) {
        session = newHttpSession(response, user, "rest");
    }
    if (session === null) {
        sendJson(response, 401, { statusCode: 20, statusMessage: "User not authenticated" });
        return;
    }
    sendJson(
        response,
        200,
        {
            statusCode: 0,
            user: {
                id: crypto.createHash("sha1").update(session.user).digest("hex").slice(0, 32),
                userName: session.user,
                firstName: "Interop",
                lastName: "Agent",
                roles: ["ROLE_AGENT"],
                enabled: true,
            },
        },
        { "X-CSRF-HEADER": "X-CSRF-TOKEN", "X-CSRF-TOKEN": session.csrf },
    );
}

async function handleControl(request, response, path) {
    if (path === "/_control/state" && request.method === "GET") {
        const subscriptions = {};
        for (const session of bayeuxSessions) {
            for (const channel of session.subscriptions) {
                subscriptions[channel.name] = (subscriptions[channel.name] || 0) + 1;
            }
        }
        sendJson(response, 200, {
            ...stats,
            sessions: bayeuxSessions.size,
            httpSessions: httpSessions.size,
            subscriptions,
        });
        return;
    }
    if (request.method !== "POST") {
        sendJson(response, 405, { error: "method not allowed" });
        return;
    }
    const body = await readJson(request);
    if (path === "/_control/publish") {
        const messages = Array.isArray(body.messages) ? body.messages : [];
        const subscribers = {};
        const publishAll = () => {
            for (const { channel, data } of messages) {
                const serverChannel = cometd.createServerChannel(channel);
                subscribers[channel] = serverChannel.subscribers.length;
                serverChannel.publish(null, data);
            }
        };
        if (body.batch) {
            inBatches([...bayeuxSessions], publishAll);
        } else {
            publishAll();
        }
        log("published", messages.length, "message(s)");
        sendJson(response, 200, { published: messages.length, subscribers });
        return;
    }
    if (path === "/_control/drop-sessions") {
        const how = body.how || "expire";
        const sessions = [...bayeuxSessions];
        for (const session of sessions) {
            if (how === "disconnect") {
                // Public API: removes the session and delivers /meta/disconnect to it.
                session.disconnect();
            } else {
                // What the server's sweeper does when a session expires, followed by the
                // release of a /meta/connect the server may be holding for it: the client's
                // next /meta/connect is answered 402::session_unknown, reconnect=handshake.
                cometd._removeServerSession(session, true);
                if (session._scheduler) {
                    session._scheduler.resume();
                }
            }
        }
        log("dropped", sessions.length, "session(s) by", how);
        sendJson(response, 200, { dropped: sessions.length, how });
        return;
    }
    if (path === "/_control/passwords") {
        // {"agent1": "new password"}: what an administrator changing passwords does.
        for (const [name, password] of Object.entries(body)) {
            options.users.set(name, String(password));
        }
        sendJson(response, 200, { users: [...options.users.keys()] });
        return;
    }
    if (path === "/_control/refuse-channels") {
        options.refusedChannels = new Set(Array.isArray(body.channels) ? body.channels : []);
        sendJson(response, 200, { refused: [...options.refusedChannels] });
        return;
    }
    if (path === "/_control/drop-http-sessions") {
        const dropped = httpSessions.size;
        httpSessions.clear();
        sendJson(response, 200, { dropped });
        return;
    }
    sendJson(response, 404, { error: "no such control endpoint" });
}

function handle(request, response) {
    const path = new URL(request.url, "http://standin").pathname;
    log(request.method, request.url);
    response.on("finish", () => {
        if (response.statusCode !== 200) {
            log(request.method, request.url, "answered", response.statusCode);
        }
    });
    if (path === NOTIFICATIONS || path.startsWith(NOTIFICATIONS + "/")) {
        handleNotifications(request, response);
    } else if (path === "/api/v2/me" && request.method === "GET") {
        handleMe(request, response);
    } else if (path.startsWith("/_control/")) {
        handleControl(request, response, path).catch((error) => {
            sendJson(response, 400, { error: String(error) });
        });
    } else {
        sendJson(response, 404, { statusCode: 6, statusMessage: "Resource not found" });
    }
}

// -- listening -----------------------------------------------------------------------------------

function listen(host, port) {
    return new Promise((resolve, reject) => {
        const server = http.createServer(handle);
        // Node's request timeout must exceed the CometD long-poll timeout.
        server.requestTimeout = options.timeout + 60000;
        server.once("error", reject);
        server.listen({ host, port, ipv6Only: host === "::1" }, () => {
            server.removeListener("error", reject);
            resolve(server);
        });
    });
}

async function main() {
    const servers = [await listen("127.0.0.1", options.port)];
    const port = servers[0].address().port;
    // "localhost" may resolve to ::1 first; serve it too when the host has IPv6 loopback.
    try {
        servers.push(await listen("::1", port));
    } catch (error) {
        log("no IPv6 loopback:", error.code || error);
    }
    const stop = () => {
        cometd.close();
        for (const server of servers) {
            server.close();
            server.closeAllConnections();
        }
    };
    process.on("SIGTERM", stop);
    process.on("SIGINT", stop);
    process.stdout.write(`GWS stand-in listening on http://127.0.0.1:${port}\n`);
}

main().catch((error) => {
    process.stderr.write(`gws_standin: ${error.stack || error}\n`);
    process.exit(1);
});
