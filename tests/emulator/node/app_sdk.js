// The npm stream-chat client as the OneCrew app makes it, and waits on its events: each with a deadline,
// never a sleep. Shared by client_app.js and app_flow.js.
const { StreamChat } = require('stream-chat');

const DEADLINE_MS = 15000;

function client(baseURL, key) {
  // allowServerSideConnect: this is Node, not a phone; the SDK warns about connectUser outside a browser otherwise.
  return new StreamChat(key, { baseURL, timeout: 10000, allowServerSideConnect: true });
}

// Resolves with the first `count` events of `type` that satisfy `test`, or rejects after the deadline.
function collect(chat, type, count, test = () => true) {
  const seen = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      sub.unsubscribe();
      reject(new Error(`${chat.userID} got ${seen.length} of ${count} ${type} within ${DEADLINE_MS} ms`));
    }, DEADLINE_MS);
    const sub = chat.on(type, (event) => {
      if (!test(event)) return;
      seen.push(event);
      if (seen.length === count) {
        clearTimeout(timer);
        sub.unsubscribe();
        resolve(seen);
      }
    });
  });
}

// Resolves with the first event of `type` that satisfies `test`, or rejects after the deadline.
function next(chat, type, test = () => true) {
  return collect(chat, type, 1, test).then(([event]) => event);
}

// What the SDK raised for a call Stream refused (null when it was not refused).
async function refused(promise) {
  try {
    await promise;
    return null;
  } catch (error) {
    return { code: error.code, status: error.status, message: error.message };
  }
}

module.exports = { client, collect, next, refused };
