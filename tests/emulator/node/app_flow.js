// The OneCrew app's side of a conversation our service created, in two phases (the test checks our
// service's unread count in between). Tokens come from our /api/chat/token.
// Usage: node app_flow.js BASE_URL API_KEY '{"phase": "send"|"read", "tokens": {...}, "users": {...}, ...}'
//   send: sender and reader connect, the reader watches the conversation, the sender sends three messages,
//         the reader receives them and pages back; an outsider and the reader on a channel missing them are refused.
//   read: the reader connects again, watches and marks the conversation read.
const { client, collect, refused } = require('./app_sdk');

async function send(baseURL, key, config, out) {
  const { tokens, users, channelId, brokenChannelId } = config;
  const sender = client(baseURL, key);
  const reader = client(baseURL, key);
  await sender.connectUser({ id: users.sender }, tokens.sender);
  await reader.connectUser({ id: users.reader }, tokens.reader);

  const readerRoom = reader.channel('messaging', channelId);
  await readerRoom.watch();
  const senderRoom = sender.channel('messaging', channelId);
  await senderRoom.watch();
  const arrived = collect(reader, 'message.new', 3, (e) => e.cid === readerRoom.cid);
  for (const text of ['one', 'two', 'three']) {
    await senderRoom.sendMessage({ text });
  }
  out.received = (await arrived).map((e) => e.message.text);

  const page = await readerRoom.query({ messages: { limit: 2 } });
  const back = await readerRoom.query({ messages: { limit: 2, id_lt: page.messages[0].id } });
  out.pages = [page.messages.map((m) => m.text), back.messages.map((m) => m.text)];

  const outsider = client(baseURL, key);
  await outsider.connectUser({ id: users.outsider }, tokens.outsider);
  out.outsider = await refused(outsider.channel('messaging', channelId).watch());
  out.missingMember = await refused(reader.channel('messaging', brokenChannelId).watch());
  await Promise.all([sender.disconnectUser(), reader.disconnectUser(), outsider.disconnectUser()]);
}

async function read(baseURL, key, config, out) {
  const { tokens, users, channelId } = config;
  const reader = client(baseURL, key);
  await reader.connectUser({ id: users.reader }, tokens.reader);
  const room = reader.channel('messaging', channelId);
  const state = await room.watch();
  out.unreadBefore = state.read.find((r) => r.user.id === users.reader).unread_messages;
  const ownRead = collect(reader, 'message.read', 1, (e) => e.user.id === users.reader);
  await room.markRead();
  await ownRead;
  out.unreadAfter = room.countUnread();
  await reader.disconnectUser();
}

async function main() {
  const [baseURL, key, configJSON] = process.argv.slice(2);
  const config = JSON.parse(configJSON);
  const out = {};
  await (config.phase === 'send' ? send : read)(baseURL, key, config, out);
  // The SDK keeps timers (reconnect checks, delivery reports) that would hold Node open for seconds.
  process.stdout.write(JSON.stringify(out) + '\n', () => process.exit(0));
}

main().catch((error) => {
  process.stderr.write(`${error.stack || error}\n`);
  process.exit(1);
});
