// The agent desktop page: 坐席工作台 (agents) and 班长监控 (supervisors, admins).
//
// Rules of this script:
// - It talks to the REST API under /api/v1 with the session's bearer token and to one WebSocket
//   (/api/v1/ws?token=...). Every event of the socket is a hint; the REST API is the truth:
//   after each (re)connection the page reloads what it shows from REST, because events sent
//   while it was away are not replayed.
// - A closed socket reconnects by itself, waiting 1 s, 2 s, 4 s ... at most 30 s between tries,
//   and says so (连接已断开，正在重连…). Before each try it asks GET /me: a session that has
//   ended sends the user back to sign-in instead of retrying forever.
// - Routes the server does not have yet (an older server; answered 404 not-found or 405) show
//   功能暂不可用 where they are used, never break the page.
// - No HTML is built from strings: text goes in with textContent, so nothing from the server or
//   a caller is ever interpreted as markup. The Content-Security-Policy forbids inline script
//   and style, so the script sets classes and attributes only.
// - Times in state count from the server's since_ms / in_state_s. The browser's clock may be off:
//   the offset from the server's Date header (when over 2 s) turns server times into local ones.
"use strict";

(() => {
  const API = "/api/v1";
  const TOKEN_KEY = "hotline.desk.token";
  const SAMPLES_KEY = "hotline.desk.samples";
  const BACKOFF_MIN_MS = 1000;
  const BACKOFF_MAX_MS = 30000;
  const BOARD_POLL_MS = 5000;
  const TOPICS_POLL_MS = 60000;
  const CHART_WINDOW_MS = 3600 * 1000;

  const STATE_LABELS = {
    logged_out: "已签出",
    available: "空闲",
    reserved: "振铃中",
    on_call: "通话中",
    wrap_up: "话后处理",
    paused: "小休",
  };
  const PRIORITY_LABELS = { normal: "普通", flagged: "重点", emergency: "紧急" };
  const URGENCY_LABELS = { normal: "一般", urgent: "较急", emergency: "紧急" };
  // The API's kinds of request (hotline.tickets.model.Kind); the intake's drafts say them in Chinese.
  const KIND_LABELS = { consultation: "咨询", help: "求助", complaint: "投诉", report: "举报", suggestion: "意见建议", praise: "表扬" };
  const KIND_OF_LABEL = Object.fromEntries(Object.entries(KIND_LABELS).map(([k, v]) => [v, k]));
  const TICKET_STATES = {
    accepted: "已受理", dispatched: "已转办", handling: "办理中", extension_requested: "延期待审",
    return_requested: "回退待审", follow_up: "续报中", termination_requested: "终止待审", replied: "已反馈",
    closed: "已办结", terminated: "已终止",
  };
  const ERROR_TEXT = {
    network: "无法连接服务器，请检查网络",
    unauthorized: "登录已失效，请重新登录",
    forbidden: "没有权限进行此操作",
    "too-many-attempts": "登录尝试过多，请稍后再试",
    "invalid-request": "请求有误",
    conflict: "当前状态下不能进行此操作",
    "illegal-transition": "当前状态下不能进行此操作",
    "no-such-agent": "系统中没有该坐席",
    "no-such-call": "未查到该通话（可能已结束）",
    unavailable: "服务暂不可用（队列或数据库无法连接），请稍后再试",
    internal: "服务器内部错误，请联系管理员",
  };
  const UNAVAILABLE = "功能暂不可用";

  // --- state -------------------------------------------------------------------------------
  const S = {
    token: sessionStorage.getItem(TOKEN_KEY),
    me: null, // {username, role, agent_id}
    open: false, // the server runs with sign-in off
    agent: null, // {state, reason, since_raw (server ms), since_ms (local ms), call_id}
    call: null, // {call_id, caller, waited_s, fetched_at, position, priority, ended, draft, text}
    dirty: new Set(), // wrap-up fields the agent changed: drafts no longer overwrite them
    recordingPaused: false,
    held: false, // the call is on hold (保持) from this page
    muted: false, // the agent is muted (静音) from this page
    ws: null,
    backoff: BACKOFF_MIN_MS,
    retryTimer: null,
    lostAt: 0, // when the socket was lost (0: connected or never)
    board: null,
    boardAt: 0,
    samples: loadSamples(),
    timers: [],
    boardSoon: null,
    skew: 0, // server clock - browser clock, ms (0 unless over 2 s)
    refreshError: null, // the message a failed read of the agent's state left
  };

  const $ = (id) => document.getElementById(id);

  class ApiError extends Error {
    constructor(status, error, message) {
      super(message);
      this.status = status;
      this.error = error;
    }
  }

  function explain(err) {
    if (!(err instanceof ApiError)) return `出错了：${err}`;
    if (missing(err)) return UNAVAILABLE;
    const known = ERROR_TEXT[err.error];
    if (!known) return `请求失败（${err.status}）${err.message ? `：${err.message}` : ""}`;
    return err.error === "invalid-request" ? `${known}：${err.message}` : known;
  }

  // A route this server does not have (an unknown route is 404 not-found; a known path without
  // the method, 405).
  function missing(err) {
    return err instanceof ApiError && ((err.status === 404 && err.error === "not-found") || err.status === 405);
  }

  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    if (S.token) headers.Authorization = `Bearer ${S.token}`;
    const init = { method, headers, cache: "no-store" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(API + path, init);
    } catch (exc) {
      throw new ApiError(0, "network", String(exc));
    }
    const date = Date.parse(response.headers.get("Date") || "");
    if (!Number.isNaN(date)) {
      const skew = date - Date.now();
      S.skew = Math.abs(skew) > 2000 ? skew : 0; // the header has whole seconds only
    }
    let data = null;
    try {
      data = await response.json();
    } catch (exc) {
      data = null;
    }
    if (!response.ok) {
      const err = new ApiError(response.status, (data && data.error) || "http-error", (data && data.message) || "");
      if (response.status === 401 && S.token && path !== "/login") sessionEnded();
      throw err;
    }
    return data;
  }

  // --- small helpers ----------------------------------------------------------------------
  function text(id, value) {
    const el = $(id);
    if (el) el.textContent = value;
  }

  function clear(el) {
    while (el.firstChild) el.removeChild(el.firstChild);
  }

  function el(tag, cls, content) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (content !== undefined) node.textContent = content;
    return node;
  }

  // A server epoch-ms time on the browser's clock.
  function localMs(serverMs) {
    return serverMs - S.skew;
  }

  function duration(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const pad = (n) => String(n).padStart(2, "0");
    return h ? `${h}:${pad(m)}:${pad(s % 60)}` : `${pad(m)}:${pad(s % 60)}`;
  }

  // 13800138000 -> 138****8000 (as the server's auth.mask_number): the panel never shows a whole
  // number, which the agent does not need to take the call.
  function mask(number) {
    if (!number) return "";
    const sip = /^sip:([^@]*)@(.*)$/.exec(number);
    if (sip) return `sip:${mask(sip[1])}@${sip[2]}`;
    if (number.length >= 7) return `${number.slice(0, 3)}****${number.slice(-4)}`;
    return number.length > 2 ? "*".repeat(number.length - 2) + number.slice(-2) : "**";
  }

  function percent(fraction) {
    return fraction === null || fraction === undefined ? "—" : `${(fraction * 100).toFixed(1)}%`;
  }

  function seconds(value) {
    return value === null || value === undefined ? "—" : `${Math.round(value)} 秒`;
  }

  function clockTime(date) {
    return date.toLocaleTimeString("zh-CN", { hour12: false });
  }

  function notice(message) {
    const box = $("notice");
    box.textContent = message || "";
    box.hidden = !message;
  }

  function show(id, visible) {
    $(id).hidden = !visible;
  }

  // --- the connection banner ----------------------------------------------------------------
  function setConn(state, message) {
    const box = $("conn");
    box.dataset.state = state;
    box.textContent = message;
  }

  // --- sign-in ------------------------------------------------------------------------------
  async function boot() {
    wire();
    if (!S.token) {
      // With sign-in off (api.auth: false) /me answers without a token: an anonymous admin.
      try {
        const me = await api("GET", "/me");
        S.open = true;
        await start(me);
        return;
      } catch (err) {
        showLogin("");
        return;
      }
    }
    try {
      await start(await api("GET", "/me"));
    } catch (err) {
      if (err.status !== 401) showLogin(explain(err));
    }
  }

  function showLogin(message) {
    stop();
    S.me = null;
    show("login-view", true);
    show("agent-view", false);
    show("board-view", false);
    show("who-box", false);
    setConn("idle", "未连接");
    text("login-error", message || "");
    $("login-user").focus();
  }

  function sessionEnded() {
    S.token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    showLogin("登录已失效，请重新登录");
  }

  async function signIn(event) {
    event.preventDefault();
    const username = $("login-user").value.trim();
    const password = $("login-password").value;
    if (!username || !password) {
      text("login-error", "请输入用户名和密码");
      return;
    }
    $("login-submit").disabled = true;
    text("login-error", "正在登录…");
    try {
      const session = await api("POST", "/login", { username, password });
      S.token = session.token;
      sessionStorage.setItem(TOKEN_KEY, S.token);
      $("login-password").value = "";
      text("login-error", "");
      await start(session.account);
    } catch (err) {
      text("login-error", err.error === "unauthorized" ? "用户名或密码错误，或账号已停用" : explain(err));
    } finally {
      $("login-submit").disabled = false;
    }
  }

  async function signOut() {
    try {
      if (S.token) await api("POST", "/logout");
    } catch (err) {
      // the session ends here either way
    }
    S.token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    showLogin("已退出登录");
  }

  async function start(me) {
    S.me = me;
    const supervises = me.role === "supervisor" || me.role === "admin";
    const acts = Boolean(me.agent_id);
    show("login-view", false);
    show("agent-view", acts);
    show("board-view", supervises);
    show("who-box", true);
    $("sign-out").hidden = S.open;
    const roles = { agent: "坐席", supervisor: "班长", admin: "管理员" };
    text("who", S.open ? "未启用登录（管理员）" : `${me.username}（${roles[me.role] || me.role}${acts ? `，工号 ${me.agent_id}` : ""}）`);
    text("title-view", supervises && !acts ? "班长监控" : "坐席工作台");
    document.title = `12345 热线${supervises && !acts ? "班长监控" : "坐席工作台"}`;
    notice(acts || supervises ? "" : "此账号不是坐席或班长账号，本页没有可用的功能（承办单位请使用单位工单接口）");
    if (!acts && !supervises) return;
    S.timers.push(setInterval(tick, 1000));
    if (supervises) {
      S.timers.push(setInterval(refreshBoard, BOARD_POLL_MS));
      S.timers.push(setInterval(refreshTopics, TOPICS_POLL_MS));
      refreshTopics();
    }
    await refreshAll();
    connect();
    (acts ? $("agent-title") : $("board-title")).focus();
  }

  function stop() {
    S.timers.forEach(clearInterval);
    S.timers = [];
    clearTimeout(S.retryTimer);
    clearTimeout(S.boardSoon);
    const ws = S.ws;
    S.ws = null;
    if (ws) ws.close();
    S.agent = null;
    resetCall();
    S.lostAt = 0;
    S.backoff = BACKOFF_MIN_MS;
  }

  async function refreshAll() {
    const jobs = [];
    if (S.me && S.me.agent_id) jobs.push(refreshAgent());
    if (S.me && (S.me.role === "supervisor" || S.me.role === "admin")) jobs.push(refreshBoard());
    await Promise.all(jobs);
  }

  // --- the WebSocket ------------------------------------------------------------------------
  function connect() {
    clearTimeout(S.retryTimer);
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const query = S.token ? `?token=${encodeURIComponent(S.token)}` : "";
    let ws;
    try {
      ws = new WebSocket(`${scheme}://${location.host}${API}/ws${query}`);
    } catch (exc) {
      lost();
      return;
    }
    S.ws = ws;
    if (!S.lostAt) setConn("connecting", "正在连接…");
    ws.onmessage = (message) => {
      let msg;
      try {
        msg = JSON.parse(message.data);
      } catch (exc) {
        return;
      }
      if (msg.type === "hello") hello();
      else onEvent(msg.type, msg.data || {});
    };
    ws.onclose = () => {
      if (S.ws !== ws) return; // closed on purpose (signed out)
      S.ws = null;
      lost();
    };
  }

  function lost() {
    if (!S.me) return;
    if (!S.lostAt) S.lostAt = Date.now();
    const delay = S.backoff;
    S.backoff = Math.min(S.backoff * 2, BACKOFF_MAX_MS);
    setConn("lost", `连接已断开，正在重连…（${Math.round(delay / 1000)} 秒后重试）`);
    S.retryTimer = setTimeout(retry, delay);
  }

  async function retry() {
    if (!S.me) return;
    try {
      await api("GET", "/me"); // an ended session goes back to sign-in (api() does that)
    } catch (err) {
      if (err.status !== 401) lost();
      return;
    }
    connect();
  }

  async function hello() {
    const back = S.lostAt !== 0;
    S.lostAt = 0;
    S.backoff = BACKOFF_MIN_MS;
    setConn("live", back ? "已重新连接，实时更新中" : "已连接，实时更新中");
    // What happened while the socket was away is not replayed: read it again.
    await refreshAll();
  }

  function onEvent(type, data) {
    const mine = S.me && S.me.agent_id && data.agent_id === S.me.agent_id;
    switch (type) {
      case "agent.state":
        if (mine) setAgent({ state: data.state, reason: data.reason || "", since_ms: data.since_ms, call_id: data.call_id || null });
        boardAgentState(data);
        break;
      case "agent.autopaused":
        if (mine) text("state-error", `系统已将您置为小休：${data.reason || ""}`);
        boardSoon();
        break;
      case "call.draft":
        onDraft(data);
        break;
      case "call.ended":
        if (S.call && data.call_id === S.call.call_id) callEnded();
        boardSoon();
        break;
      case "alert":
        liveAlert(data);
        break;
      default:
        boardSoon(); // call.queued, offer.* ...: the wallboard's numbers moved
    }
  }

  // --- the agent's own state ----------------------------------------------------------------
  async function refreshAgent() {
    try {
      const view = await api("GET", `/agents/${encodeURIComponent(S.me.agent_id)}`);
      setAgent(view);
      if ($("state-error").textContent === S.refreshError) text("state-error", ""); // only its own
    } catch (err) {
      if (err.status !== 401) {
        S.refreshError = explain(err);
        text("state-error", S.refreshError);
      }
    }
  }

  function setAgent(view) {
    const before = S.agent;
    // A REST answer and the socket's events may cross: never go back to an older state.
    if (before && view.since_ms && view.since_ms < before.since_raw) return;
    S.agent = {
      state: view.state,
      reason: view.reason || "",
      since_raw: view.since_ms || 0,
      since_ms: view.since_ms ? localMs(view.since_ms) : Date.now(),
      call_id: view.call_id || null,
    };
    const label = $("state-label");
    label.textContent = STATE_LABELS[view.state] || view.state;
    label.dataset.state = view.state;
    text("state-reason", view.reason ? `（${reasonLabel(view.reason)}）` : "");
    tick();
    const st = view.state;
    const focused = document.activeElement;
    $("btn-login").disabled = st !== "logged_out";
    $("btn-logout").disabled = st === "logged_out" || st === "on_call";
    $("btn-available").disabled = st !== "paused";
    $("btn-pause").disabled = !["available", "wrap_up", "paused"].includes(st);
    $("btn-wrapdone").disabled = st !== "wrap_up";
    $("btn-record").disabled = !(st === "on_call" && S.agent.call_id);
    $("btn-reject").disabled = !(st === "reserved" && S.agent.call_id);
    $("btn-answer").disabled = !(st === "reserved" && S.agent.call_id);
    const talking = st === "on_call" && Boolean(S.agent.call_id);
    ["btn-transfer", "btn-hold", "btn-mute", "btn-conference", "btn-dtmf", "btn-hangup"].forEach((id) => ($(id).disabled = !talking));
    // A button that just became disabled has lost the focus: give it to the next one that works.
    if (focused && focused.closest(".statebar") && focused.disabled) {
      const next = [...document.querySelectorAll(".statebar button")].find((b) => !b.disabled);
      if (next) next.focus();
    }
    const handed = handedTo(S.agent);
    if (handed) {
      // His call went on with another agent, who owns it (and its ticket): this page lets go.
      if (S.call && S.call.call_id === S.agent.call_id) resetCall();
      callStatus(`通话已转接给坐席 ${handed}，工单由该坐席提交`);
      text("form-status", `该通话已转接给坐席 ${handed}，本页不再为其提交工单`);
    } else if (S.agent.call_id && ["reserved", "on_call", "wrap_up"].includes(st)) {
      const fresh = !S.call || S.call.call_id !== S.agent.call_id;
      if (fresh) newCall(S.agent.call_id);
      if (st === "reserved" && (fresh || !before || before.state !== "reserved")) announceCall();
      if (before && before.state === "reserved" && st === "on_call" && S.call.rang_s === null) {
        S.call.rang_s = (Date.now() - before.since_ms) / 1000;
      }
      if (st !== "reserved") freezeQueueWait("已结束等待");
      if (st !== "reserved" && S.call.waited_s !== null && S.call.frozen_wait === null) {
        S.call.frozen_wait = S.call.waited_s + (Date.now() - S.call.fetched_at) / 1000; // answered: the wait is over
      }
      if (st === "on_call") callStatus("通话中");
      if (st === "wrap_up") callStatus("话后处理：请核对并提交工单");
      // The call's facts grow as it goes (the call record is written when it ends): read again.
      if (!fresh && before && before.state !== st && (st === "on_call" || st === "wrap_up")) loadContext(S.call.call_id);
    } else if (!S.call && handedTo(before)) {
      resetCall(); // his wrap-up after a transfer is over: the panel waits for his next call
    } else if (S.call && !S.call.ended && before && before.state !== st) {
      freezeQueueWait("来电已不在本坐席"); // rejected, or gone to another agent: not his wait to watch
      const talked = ["on_call", "wrap_up"].includes(before.state);
      callStatus(talked ? "通话已结束" : "来电未接通：来电人已挂机或已转给其他坐席");
    }
  }

  // The reason of a first agent's wrap-up after a transfer: "transferred:<agent who took it>".
  const TRANSFERRED = "transferred:";

  function handedTo(agent) {
    return agent && agent.reason && agent.reason.startsWith(TRANSFERRED) ? agent.reason.slice(TRANSFERRED.length) : null;
  }

  function reasonLabel(reason) {
    return reason.startsWith(TRANSFERRED) ? `已转接给坐席 ${reason.slice(TRANSFERRED.length)}` : reason;
  }

  async function changeState(body) {
    text("state-error", "");
    try {
      setAgent(await api("POST", `/agents/${encodeURIComponent(S.me.agent_id)}/state`, body));
    } catch (err) {
      text("state-error", explain(err));
    }
  }

  async function agentLogin() {
    text("state-error", "");
    try {
      setAgent(await api("POST", `/agents/${encodeURIComponent(S.me.agent_id)}/login`, {}));
    } catch (err) {
      text("state-error", explain(err));
    }
  }

  async function agentLogout() {
    text("state-error", "");
    try {
      setAgent(await api("POST", `/agents/${encodeURIComponent(S.me.agent_id)}/logout`, { reason: "坐席签出" }));
    } catch (err) {
      text("state-error", explain(err));
    }
  }

  // --- the call -----------------------------------------------------------------------------
  // The caller's wait stops ticking on this page once the call stops ringing here.
  function freezeQueueWait(note) {
    const c = S.call;
    if (!c || c.queue_wait_s === null || c.queue_wait_frozen !== null) return;
    c.queue_wait_frozen = c.queue_wait_s + (Date.now() - c.queue_wait_at) / 1000;
    c.queue_wait_note = note;
  }

  // Nothing of the last call stays on the page for whoever signs in next.
  function resetCall() {
    S.call = null;
    S.dirty.clear();
    $("ticket-form").reset();
    ["form-status", "record-status", "state-error"].forEach((id) => text(id, ""));
    text("call-announce", "暂无来电");
    show("call-facts", false);
    text("transcript", "（尚无转写）");
    renderDraft(null);
    renderKb(null);
    clear($("history"));
    text("history-status", "来电时显示该来电人的历史工单和疑似重复工单。");
  }

  function newCall(callId) {
    S.call = { call_id: callId, caller: null, waited_s: null, fetched_at: Date.now(), frozen_wait: null, rang_s: null, position: null, priority: null, ended: false, draft: null, text: "", queue_wait_s: null, queue_wait_at: 0, queue_wait_frozen: null, queue_wait_note: "" };
    S.dirty.clear();
    S.recordingPaused = false;
    $("btn-record").firstChild.textContent = "暂停录音 ";
    S.held = S.muted = false;
    $("btn-hold").firstChild.textContent = "保持 ";
    $("btn-mute").firstChild.textContent = "静音 ";
    text("record-status", "");
    $("ticket-form").reset();
    text("form-status", "");
    show("call-facts", true);
    text("call-id", callId);
    text("call-caller", "查询中…");
    text("call-wait", "—");
    text("call-waited", "—");
    text("call-queue", "—");
    text("transcript", "（尚无转写）");
    renderDraft(null);
    renderKb(null);
    loadQueueEntry(callId);
    loadContext(callId);
  }

  async function loadQueueEntry(callId) {
    try {
      const queue = await api("GET", "/queue");
      const entry = (queue.waiting || []).find((c) => c.call_id === callId);
      if (!S.call || S.call.call_id !== callId) return;
      // How long the caller has waited (queued, then ringing): the call is waiting or offered.
      const ringing = entry || (queue.offered || []).find((c) => c.call_id === callId);
      if (ringing) {
        Object.assign(S.call, { queue_wait_s: ringing.waited_s, queue_wait_at: Date.now() });
        if (!S.agent || S.agent.state !== "reserved") Object.assign(S.call, { queue_wait_frozen: ringing.waited_s, queue_wait_note: "已结束等待" });
      }
      if (entry) {
        Object.assign(S.call, { caller: entry.caller, waited_s: entry.waited_s, fetched_at: Date.now(), position: entry.position, priority: entry.priority });
        showCaller(entry.caller);
        text("call-queue", `12345 热线 · 第 ${entry.position} 位 · ${PRIORITY_LABELS[entry.priority] || entry.priority}`);
        if (S.agent && S.agent.state === "reserved") announceCall();
        else S.call.frozen_wait = entry.waited_s;
      } else {
        // Offered calls are not in GET /queue's waiting list: the number (masked) comes with
        // the offer, the whole number with the call's context, if at all.
        if (ringing && !S.call.caller) showCaller(ringing.caller);
        if (!S.call.caller) text("call-caller", "—");
        text("call-queue", "12345 热线 · 已分配给您");
      }
      tick();
    } catch (err) {
      text("call-queue", explain(err));
    }
  }

  function showCaller(number) {
    if (!S.call || !number) return;
    S.call.caller = number;
    text("call-caller", mask(number));
    if (S.agent && S.agent.state === "reserved") announceCall();
  }

  function announceCall() {
    const c = S.call;
    const who = c && c.caller ? mask(c.caller) : "号码未知";
    callStatus(`来电：${who}，请在话机上接听`);
  }

  function callStatus(message) {
    text("call-announce", message);
  }

  function callEnded() {
    S.call.ended = true;
    callStatus("通话已结束：请核对并提交工单");
    $("btn-record").disabled = true;
  }

  function onDraft(data) {
    if (!S.me || !S.me.agent_id || !data.call_id) return;
    if (!S.call || S.call.call_id !== data.call_id) {
      if (S.agent && S.agent.call_id === data.call_id && !handedTo(S.agent)) newCall(data.call_id);
      else return; // a supervisor who also takes calls sees everyone's drafts
    }
    S.call.text = data.text || "";
    S.call.draft = data.draft || null;
    text("transcript", data.text ? `${data.text}${data.final ? "" : " …"}` : "（尚无转写）");
    renderDraft(S.call.draft);
    renderKb(S.call.draft && S.call.draft.kb);
    prefill(S.call.draft, data.text || "");
  }

  // The knowledge base's answers for what the caller said (the speech service's matches, best
  // first): topic and score, the answer text behind a disclosure the keyboard opens too.
  function renderKb(matches) {
    const list = $("kb-list");
    const open = new Set([...list.querySelectorAll("details[open]")].map((d) => d.dataset.entry));
    clear(list);
    const found = (Array.isArray(matches) ? matches : []).filter((m) => m && (m.topic || m.question));
    if (!found.length) {
      list.appendChild(el("li", "hint", "（暂无匹配）"));
      return;
    }
    found.forEach((m) => {
      const item = el("li", "kb-item");
      const label = `${m.topic || m.question}（匹配度 ${Math.round((Number(m.score) || 0) * 100)}%）`;
      if (!m.answer) {
        item.appendChild(el("span", "", label));
      } else {
        const details = el("details");
        details.dataset.entry = m.entry_id || m.id || label;
        details.open = open.has(details.dataset.entry);
        details.appendChild(el("summary", "", label));
        if (m.question) details.appendChild(el("p", "hint", `常见问法：${m.question}`));
        details.appendChild(el("p", "answer", m.answer));
        item.appendChild(details);
      }
      list.appendChild(item);
    });
  }

  function renderDraft(draft) {
    if (!draft) {
      ["draft-kind", "draft-place", "draft-urgency", "draft-summary", "draft-hints"].forEach((id) => text(id, "—"));
      return;
    }
    const kind = draft.kind || {};
    text("draft-kind", kind.value ? `${kind.value}（置信度 ${Math.round((kind.confidence || 0) * 100)}%）` : "—");
    const place = draft.place || {};
    text("draft-place", [place.label, place.detail].filter(Boolean).join(" ") || "—");
    const urgency = draft.urgency || {};
    const flags = (draft.emergencies || []).map((e) => e.label).filter(Boolean);
    text("draft-urgency", `${URGENCY_LABELS[urgency.level] || urgency.level || "—"}${flags.length ? `：${flags.join("、")}` : ""}`);
    text("draft-summary", (draft.summary && draft.summary.text) || "—");
    const hints = [];
    (draft.links || []).forEach((l) => hints.push(`联动 ${l.number}：${l.reason}`));
    (draft.out_of_scope || []).forEach((o) => hints.push(`不属受理范围（${o.label}）：${o.channel}`));
    (draft.phones || []).forEach((p) => hints.push(`提到电话 ${p.value}`));
    text("draft-hints", hints.join("；") || "—");
  }

  function prefill(draft, transcript) {
    if (!draft) return;
    const set = (id, value) => {
      if (S.dirty.has(id) || value === undefined || value === null) return;
      const field = $(id);
      if (field.type === "checkbox") field.checked = Boolean(value);
      else field.value = value;
    };
    const said = draft.kind && draft.kind.value;
    const kind = KIND_OF_LABEL[said] || (KIND_LABELS[said] ? said : "");
    if (kind) set("f-kind", kind);
    const place = draft.place || {};
    set("f-place", [place.label, place.detail].filter(Boolean).join(""));
    set("f-content", draft.text || transcript);
    set("f-emergency", draft.urgency && draft.urgency.level === "emergency");
  }

  async function loadContext(callId, matter) {
    const list = $("history");
    text("history-status", "查询中…");
    const query = matter ? `?${new URLSearchParams(matter)}` : "";
    try {
      const context = await api("GET", `/calls/${encodeURIComponent(callId)}/context${query}`);
      if (!S.call || S.call.call_id !== callId) return;
      showCaller(context.caller);
      renderHistory(context || {});
    } catch (err) {
      clear(list);
      const unknown = err.error === "no-such-call" ? "暂未查到该通话的来电人信息（通话结束登记后会再查）" : explain(err);
      text("history-status", missing(err) ? `${UNAVAILABLE}：来电人历史` : unknown);
    }
  }

  function renderHistory(context) {
    const list = $("history");
    clear(list);
    const kind = (k) => KIND_LABELS[k] || k || "";
    const day = (iso) => String(iso || "").slice(0, 10);
    const candidates = context.candidates || [];
    candidates.forEach((c) => {
      const li = el("li", c.not_accepted_again ? "warn" : "");
      li.appendChild(el("span", "tag", c.relation === "duplicate" ? "疑似重复" : "重复来电"));
      const facts = [c.number, day(c.created_at), kind(c.kind), TICKET_STATES[c.status] || c.status, c.content].filter(Boolean);
      li.appendChild(el("span", "", facts.join(" · ")));
      if (c.reason) li.appendChild(el("span", "reason", `（${c.reason}）`));
      if (c.not_accepted_again) li.appendChild(el("strong", "", " 不再受理"));
      list.appendChild(li);
    });
    const shown = new Set(candidates.map((c) => c.number));
    const history = (context.history || []).filter((t) => !shown.has(t.number));
    history.forEach((t) => {
      const li = el("li");
      li.appendChild(el("span", "tag", "历史工单"));
      const facts = [t.number, day(t.created_at), kind(t.kind), TICKET_STATES[t.status] || t.status, t.place, t.content].filter(Boolean);
      li.appendChild(el("span", "", facts.join(" · ")));
      list.appendChild(li);
    });
    const total = candidates.length + history.length;
    text("history-status", total ? `共 ${total} 条（疑似重复 ${candidates.length} 条）` : "该来电人没有历史工单");
  }

  // Looks for repeats of what the form says now (the agent's words win over the draft's).
  function checkRepeats() {
    if (!S.call) {
      text("history-status", "当前没有通话");
      return;
    }
    const matter = {};
    if ($("f-kind").value) matter.kind = $("f-kind").value;
    if ($("f-place").value.trim()) matter.place = $("f-place").value.trim();
    if ($("f-content").value.trim()) matter.content = $("f-content").value.trim();
    loadContext(S.call.call_id, matter);
  }

  // Blind transfer of the call on the agent's phone to another agent (POST /calls/{id}/transfer).
  async function transferCall() {
    if (!S.call || !S.agent || S.agent.state !== "on_call") {
      text("record-status", "当前不在通话中，无法转接");
      return;
    }
    const target = (prompt("转接给坐席（盲转），请输入对方工号：") || "").trim();
    if (!target) return;
    try {
      await api("POST", `/calls/${encodeURIComponent(S.call.call_id)}/transfer`, { target: `agent:${target}`, mode: "blind" });
      text("record-status", `已转接给坐席 ${target}，等待对方接听`);
    } catch (err) {
      const busy = err.error === "agent-not-available" ? `坐席 ${target} 当前不是空闲状态，无法转接` : "";
      text("record-status", busy || (missing(err) ? `${UNAVAILABLE}：转接` : explain(err)));
    }
  }

  // 拒接: the call ringing at the agent's phone goes to the next agent (POST /calls/{id}/reject);
  // the server pauses him with the reason 拒接, which the socket's agent.state shows.
  async function rejectCall() {
    if (!S.call || $("btn-reject").disabled) return;
    const callId = S.call.call_id;
    $("btn-reject").disabled = true;
    try {
      await api("POST", `/calls/${encodeURIComponent(callId)}/reject`, {});
      text("record-status", "已拒接：来电人保留排队位置，将转给其他坐席；您已进入小休（拒接）");
    } catch (err) {
      const gone = err.error === "not-ringing" || err.error === "no-such-call" ? "来电已不在振铃，无法拒接" : "";
      text("record-status", gone || (missing(err) ? `${UNAVAILABLE}：拒接` : explain(err)));
      if (S.agent) $("btn-reject").disabled = !(S.agent.state === "reserved" && S.agent.call_id);
    }
  }

  // 接听 from the page (POST /calls/{id}/answer): the worker rings the agent's phone again asking
  // it to pick up by itself (Call-Info answer-after=0); the socket's agent.state then shows 通话中.
  async function answerCall() {
    if (!S.call || $("btn-answer").disabled) return;
    const callId = S.call.call_id;
    $("btn-answer").disabled = true;
    text("record-status", "正在请求话机接听…");
    try {
      await api("POST", `/calls/${encodeURIComponent(callId)}/answer`, {});
      text("record-status", "已请求话机自动接听；若话机不支持自动应答，请在话机上接听");
    } catch (err) {
      const gone = err.error === "not-ringing" || err.error === "no-such-call" ? "来电已不在振铃，无法接听" : "";
      text("record-status", gone || (missing(err) ? `${UNAVAILABLE}：接听` : explain(err)));
      if (S.agent) $("btn-answer").disabled = !(S.agent.state === "reserved" && S.agent.call_id);
    }
  }

  async function toggleRecording() {
    if (!S.call || $("btn-record").disabled) return;
    const paused = !S.recordingPaused;
    try {
      await api("POST", `/calls/${encodeURIComponent(S.call.call_id)}/recording`, { paused });
      S.recordingPaused = paused;
      $("btn-record").firstChild.textContent = paused ? "恢复录音 " : "暂停录音 ";
      text("record-status", paused ? "录音已暂停（如来电人提供银行卡号等敏感信息时）" : "录音已恢复");
    } catch (err) {
      text("record-status", missing(err) ? `${UNAVAILABLE}：暂停录音` : explain(err));
    }
  }

  // --- the other controls of a connected call (carried out by the caller's worker) -----------
  async function control(path, body, label, done) {
    if (!S.call) return false;
    try {
      await api("POST", `/calls/${encodeURIComponent(S.call.call_id)}/${path}`, body);
      text("record-status", done);
      return true;
    } catch (err) {
      text("record-status", missing(err) ? `${UNAVAILABLE}：${label}` : explain(err));
      return false;
    }
  }

  async function toggleHold() {
    if ($("btn-hold").disabled) return;
    const held = !S.held;
    if (await control(held ? "hold" : "resume", {}, held ? "保持" : "恢复通话", held ? "已保持：来电人正在听等待音乐" : "已恢复通话")) {
      S.held = held;
      $("btn-hold").firstChild.textContent = held ? "恢复通话 " : "保持 ";
    }
  }

  async function toggleMute() {
    if ($("btn-mute").disabled) return;
    const muted = !S.muted;
    if (await control("mute", { muted }, muted ? "静音" : "取消静音", muted ? "已静音：来电人听不到您（录音照常）" : "已取消静音")) {
      S.muted = muted;
      $("btn-mute").firstChild.textContent = muted ? "取消静音 " : "静音 ";
    }
  }

  async function conferenceCall() {
    if ($("btn-conference").disabled) return;
    const number = (prompt("三方通话：请输入要邀请的部门电话号码（如 12315）：") || "").trim();
    if (!number) return;
    if (!/^[0-9]{3,20}$/.test(number)) {
      text("record-status", "号码只能是 3 到 20 位数字");
      return;
    }
    await control("conference", { number }, "三方通话", `正在呼叫 ${number} 加入三方通话`);
  }

  async function sendDigits() {
    if ($("btn-dtmf").disabled) return;
    const digits = (prompt("发送按键：请输入要发送给来电人的按键（0-9、*、#）：") || "").trim();
    if (!digits) return;
    if (!/^[0-9*#A-D]{1,32}$/.test(digits)) {
      text("record-status", "按键只能是 0-9、*、#，最多 32 个");
      return;
    }
    await control("dtmf", { digits }, "发送按键", `已发送按键 ${digits}`);
  }

  async function hangUp() {
    if ($("btn-hangup").disabled) return;
    await control("hangup", {}, "挂断", "已挂断");
  }

  // --- the wrap-up form ---------------------------------------------------------------------
  async function submitTicket(event) {
    if (event) event.preventDefault();
    const status = $("form-status");
    if (!S.call) {
      status.textContent = "当前没有通话，无法提交工单";
      return;
    }
    const kind = $("f-kind").value;
    const content = $("f-content").value.trim();
    if (!kind || !content) {
      status.textContent = "请选择诉求类型并填写诉求内容";
      (kind ? $("f-content") : $("f-kind")).focus();
      return;
    }
    const body = {
      kind,
      content,
      place: $("f-place").value.trim(),
      lead_unit: $("f-lead").value.trim(),
      assisting_units: $("f-assist").value.split(/[、,，;；\s]+/).map((s) => s.trim()).filter(Boolean),
      emergency: $("f-emergency").checked,
      caller_name: $("f-name").value.trim(),
      consent_callback: $("f-consent").checked,
      answer: $("f-answer").value.trim(),
    };
    $("btn-submit").disabled = true;
    status.textContent = "正在提交…";
    try {
      const reply = await api("POST", `/calls/${encodeURIComponent(S.call.call_id)}/ticket`, body);
      const number = reply && reply.ticket && reply.ticket.number;
      const again = reply && reply.created === false ? "（此前已提交，未重复建单）" : "";
      status.textContent = number ? `工单已提交，编号 ${number}${again}` : `工单已提交${again}`;
      S.dirty.clear();
    } catch (err) {
      status.textContent = missing(err) ? `${UNAVAILABLE}：工单提交（请稍后在工单系统中录入）` : explain(err);
    } finally {
      $("btn-submit").disabled = false;
    }
  }

  // --- the supervisor's wallboard -----------------------------------------------------------
  async function refreshBoard() {
    if (!S.me || !(S.me.role === "supervisor" || S.me.role === "admin")) return;
    let board;
    try {
      board = await api("GET", "/wallboard");
    } catch (err) {
      if (err.status !== 401) text("board-time", explain(err));
      return;
    }
    S.board = board;
    S.boardAt = Date.now();
    renderBoard(board);
    sample(board.queue.waiting);
  }

  function boardSoon() {
    if (!S.me || !(S.me.role === "supervisor" || S.me.role === "admin")) return;
    clearTimeout(S.boardSoon);
    S.boardSoon = setTimeout(refreshBoard, 200);
  }

  function renderBoard(board) {
    const q = board.queue;
    text("board-time", clockTime(new Date(board.generated_at)));
    text("board-day", board.day);
    text("m-waiting", String(q.waiting));
    text("m-longest", seconds(q.longest_wait_s));
    text("m-answer-rate", percent(q.answer_rate));
    const sl = q.service_level || {};
    text("m-service-level", percent(sl.fraction));
    text("m-sl-threshold", String(sl.threshold_s));
    text("m-handle", seconds(q.average_handle_s));
    text("m-answered", `${q.answered_today} / ${q.abandoned_today}`);
    text("m-callbacks", String(q.callbacks_waiting));
    renderAlerts(board.alerts || []);
    const body = $("agents");
    clear(body);
    if (!board.agents.length) {
      const row = el("tr");
      const cell = el("td", "", "暂无签入坐席");
      cell.colSpan = 6;
      row.appendChild(cell);
      body.appendChild(row);
    }
    board.agents.forEach((a) => body.appendChild(agentRow(a, Date.now() - a.in_state_s * 1000)));
  }

  function agentRow(a, sinceMs) {
    const row = el("tr");
    row.dataset.agent = a.agent_id;
    row.appendChild(el("td", "", a.agent_id));
    row.appendChild(el("td", "", a.name || ""));
    const state = el("td", "state", `${STATE_LABELS[a.state] || a.state}${a.reason ? `（${reasonLabel(a.reason)}）` : ""}`);
    state.dataset.state = a.state;
    row.appendChild(state);
    const since = el("td", "since", duration((Date.now() - sinceMs) / 1000));
    since.dataset.since = String(sinceMs);
    row.appendChild(since);
    row.appendChild(el("td", "", String(a.calls_answered ?? 0)));
    row.appendChild(el("td", "", duration(a.talk_s || 0)));
    return row;
  }

  function boardAgentState(data) {
    if (!S.board || !data.agent_id) return;
    const body = $("agents");
    const old = body.querySelector(`tr[data-agent="${CSS.escape(data.agent_id)}"]`);
    const known = S.board.agents.find((a) => a.agent_id === data.agent_id) || { agent_id: data.agent_id, name: "", calls_answered: 0, talk_s: 0 };
    const a = { ...known, state: data.state, reason: data.reason || "" };
    if (data.state === "logged_out") {
      if (old) old.remove();
    } else {
      const row = agentRow(a, data.since_ms ? localMs(data.since_ms) : Date.now());
      if (old) body.replaceChild(row, old);
      else {
        const placeholder = body.querySelector("td[colspan]");
        if (placeholder) clear(body);
        body.appendChild(row);
      }
    }
    boardSoon();
  }

  function renderAlerts(alerts) {
    const list = $("alerts");
    [...list.querySelectorAll("li.computed, li.none")].forEach((li) => li.remove());
    alerts.forEach((a) => list.insertBefore(el("li", "computed alert", a.message), list.firstChild));
    if (!list.children.length) list.appendChild(el("li", "none", "暂无告警"));
  }

  function liveAlert(data) {
    if (!S.me || !(S.me.role === "supervisor" || S.me.role === "admin")) return;
    const list = $("alerts");
    const none = list.querySelector("li.none");
    if (none) none.remove();
    const labels = { "dispatch-stalled": "派单停滞" };
    const label = labels[data.alert] || data.alert || "告警";
    list.appendChild(el("li", "live alert", `${clockTime(new Date())} ${label}${data.details ? `：${data.details}` : ""}`));
    const live = list.querySelectorAll("li.live");
    if (live.length > 10) live[0].remove();
  }

  async function refreshTopics() {
    const list = $("topics");
    try {
      const data = await api("GET", "/reports/hot-topics");
      clear(list);
      const rows = [
        ...(data.kinds || []).slice(0, 5).map((t) => ["类型", { ...t, name: KIND_LABELS[t.key] || t.name }]),
        ...(data.places || []).slice(0, 5).map((t) => ["地点", t]),
      ];
      rows.forEach(([what, t]) => {
        const change = t.change_pct === null || t.change_pct === undefined ? "" : `，环比 ${t.change_pct > 0 ? "+" : ""}${t.change_pct}%`;
        list.appendChild(el("li", "", `${what}：${t.name || t.key}（${t.count} 件${change}）`));
      });
      text("topics-status", rows.length ? `本周（${String(data.since || "").slice(0, 10)} 起）` : "本周暂无热点诉求");
    } catch (err) {
      clear(list);
      text("topics-status", missing(err) ? `${UNAVAILABLE}：热点诉求` : explain(err));
    }
  }

  // --- the chart of the last hour -----------------------------------------------------------
  function loadSamples() {
    try {
      const saved = JSON.parse(sessionStorage.getItem(SAMPLES_KEY) || "[]");
      return Array.isArray(saved) ? saved.filter((s) => Array.isArray(s) && s.length === 2) : [];
    } catch (exc) {
      return [];
    }
  }

  function sample(waiting) {
    const now = Date.now();
    S.samples.push([now, waiting]);
    S.samples = S.samples.filter(([t]) => t >= now - CHART_WINDOW_MS);
    try {
      sessionStorage.setItem(SAMPLES_KEY, JSON.stringify(S.samples));
    } catch (exc) {
      // storage full: the chart still works for this page's life
    }
    drawChart();
  }

  function drawChart() {
    const NS = "http://www.w3.org/2000/svg";
    const W = 600;
    const H = 160;
    const L = 32;
    const B = 20;
    const now = Date.now();
    const top = Math.max(5, ...S.samples.map(([, v]) => v));
    const x = (t) => L + ((t - (now - CHART_WINDOW_MS)) / CHART_WINDOW_MS) * (W - L - 4);
    const y = (v) => H - B - (v / top) * (H - B - 8);
    const svg = document.createElementNS(NS, "svg");
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    svg.setAttribute("role", "img");
    const last = S.samples.length ? S.samples[S.samples.length - 1][1] : 0;
    const peak = S.samples.length ? Math.max(...S.samples.map(([, v]) => v)) : 0;
    svg.setAttribute("aria-label", `近一小时排队人数：当前 ${last} 人，最高 ${peak} 人`);
    const line = (x1, y1, x2, y2, cls) => {
      const l = document.createElementNS(NS, "line");
      [["x1", x1], ["y1", y1], ["x2", x2], ["y2", y2]].forEach(([k, v]) => l.setAttribute(k, String(v)));
      l.setAttribute("class", cls);
      svg.appendChild(l);
    };
    const label = (tx, ty, content, anchor) => {
      const t = document.createElementNS(NS, "text");
      t.setAttribute("x", String(tx));
      t.setAttribute("y", String(ty));
      t.setAttribute("class", "axis-label");
      t.setAttribute("text-anchor", anchor || "middle");
      t.textContent = content;
      svg.appendChild(t);
    };
    [0, Math.round(top / 2), top].forEach((v) => {
      line(L, y(v), W - 4, y(v), "gridline");
      label(L - 4, y(v) + 4, String(v), "end");
    });
    [[0, "60 分钟前"], [30, "30 分钟前"], [60, "现在"]].forEach(([m, t]) => label(x(now - CHART_WINDOW_MS + m * 60000), H - 4, t, m === 0 ? "start" : m === 60 ? "end" : "middle"));
    if (S.samples.length) {
      // a step line: the depth stays what it was until the next sample
      const points = [];
      S.samples.forEach(([t, v], i) => {
        if (i) points.push(`${x(t).toFixed(1)},${y(S.samples[i - 1][1]).toFixed(1)}`);
        points.push(`${x(t).toFixed(1)},${y(v).toFixed(1)}`);
      });
      points.push(`${x(now).toFixed(1)},${y(last).toFixed(1)}`);
      const poly = document.createElementNS(NS, "polyline");
      poly.setAttribute("points", points.join(" "));
      poly.setAttribute("class", "series");
      svg.appendChild(poly);
    }
    const box = $("chart");
    clear(box);
    box.appendChild(svg);
    text("chart-summary", `当前排队 ${last} 人，近一小时最高 ${peak} 人（每 ${BOARD_POLL_MS / 1000} 秒及每次事件采样）`);
  }

  // --- every second -------------------------------------------------------------------------
  function tick() {
    const now = Date.now();
    if (S.agent) text("state-timer", duration((now - S.agent.since_ms) / 1000));
    if (S.call && S.call.waited_s !== null) {
      const waited = S.call.frozen_wait ?? S.call.waited_s + (now - S.call.fetched_at) / 1000;
      text("call-wait", S.call.frozen_wait === null ? duration(waited) : `${duration(waited)}（已结束等待）`);
    } else if (S.call && S.agent && S.agent.state === "reserved") {
      text("call-wait", `振铃 ${duration((now - S.agent.since_ms) / 1000)}`);
    } else if (S.call && S.call.rang_s !== null) {
      text("call-wait", `振铃 ${duration(S.call.rang_s)}（已接起）`);
    }
    if (S.call && S.call.queue_wait_s !== null) {
      const frozen = S.call.queue_wait_frozen;
      const waited = frozen ?? S.call.queue_wait_s + (now - S.call.queue_wait_at) / 1000;
      text("call-waited", `${duration(waited)}（${frozen === null ? "含排队和振铃" : S.call.queue_wait_note}）`);
    }
    document.querySelectorAll("#agents td[data-since]").forEach((td) => {
      td.textContent = duration((now - Number(td.dataset.since)) / 1000);
    });
  }

  // --- keyboard -----------------------------------------------------------------------------
  const SHORTCUTS = {
    KeyI: "btn-login",
    KeyO: "btn-logout",
    Digit1: "btn-available",
    Digit2: "btn-pause",
    Digit3: "btn-wrapdone",
    KeyR: "btn-record",
    KeyJ: "btn-reject",
    KeyA: "btn-answer",
    KeyK: "btn-hold",
    KeyM: "btn-mute",
    KeyG: "btn-hangup",
    KeyS: "btn-submit",
  };
  const SHORTCUT_NAMES = { KeyI: "签入", KeyO: "签出", Digit1: "空闲", Digit2: "小休", Digit3: "话后处理结束", KeyR: "暂停录音", KeyJ: "拒接", KeyA: "接听", KeyK: "保持", KeyM: "静音", KeyG: "挂断", KeyS: "提交工单" };

  function onKey(event) {
    if (!event.altKey || event.ctrlKey || event.metaKey || !S.me || !S.me.agent_id) return;
    if (event.code === "KeyW") {
      event.preventDefault();
      $("form-title").scrollIntoView({ block: "start" });
      $("f-kind").focus();
      return;
    }
    const id = SHORTCUTS[event.code];
    if (!id) return;
    event.preventDefault();
    const button = $(id);
    if (button.disabled) {
      const where = id === "btn-submit" ? "form-status" : ["btn-record", "btn-reject", "btn-answer", "btn-hold", "btn-mute", "btn-hangup"].includes(id) ? "record-status" : "state-error";
      text(where, `当前状态下不能${SHORTCUT_NAMES[event.code]}`);
      return;
    }
    button.click();
  }

  // --- wiring -------------------------------------------------------------------------------
  function wire() {
    $("login-form").addEventListener("submit", signIn);
    $("sign-out").addEventListener("click", signOut);
    $("btn-login").addEventListener("click", agentLogin);
    $("btn-logout").addEventListener("click", agentLogout);
    $("btn-available").addEventListener("click", () => changeState({ state: "available" }));
    $("btn-pause").addEventListener("click", () => changeState({ state: "paused", reason: $("pause-reason").value }));
    $("btn-wrapdone").addEventListener("click", () => changeState({ state: "wrap_up_done" }));
    $("btn-record").addEventListener("click", toggleRecording);
    $("btn-reject").addEventListener("click", rejectCall);
    $("btn-answer").addEventListener("click", answerCall);
    $("btn-transfer").addEventListener("click", transferCall);
    $("btn-hold").addEventListener("click", toggleHold);
    $("btn-mute").addEventListener("click", toggleMute);
    $("btn-conference").addEventListener("click", conferenceCall);
    $("btn-dtmf").addEventListener("click", sendDigits);
    $("btn-hangup").addEventListener("click", hangUp);
    $("ticket-form").addEventListener("submit", submitTicket);
    $("btn-repeats").addEventListener("click", checkRepeats);
    ["f-kind", "f-place", "f-content", "f-lead", "f-assist", "f-name", "f-emergency", "f-consent", "f-answer"].forEach((id) => {
      $(id).addEventListener("input", () => S.dirty.add(id));
      $(id).addEventListener("change", () => S.dirty.add(id));
    });
    document.addEventListener("keydown", onKey);
    drawChart();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot);
  else boot();
})();
