// Drives the npm stream-chat server-side client against the emulator; prints what it saw as JSON.
// Usage: node server_client.js BASE_URL API_KEY API_SECRET
const { StreamChat } = require('stream-chat');

async function main() {
  const [baseURL, key, secret] = process.argv.slice(2);
  const client = new StreamChat(key, secret, { baseURL, timeout: 5000 });
  const out = {};

  await client.upsertUsers([{ id: 'js-ann', name: 'Ann', kind: 'user' }, { id: 'js-bob' }]);
  const found = await client.queryUsers({ id: { $in: ['js-ann', 'js-bob'] } });
  out.queried = found.users.map((u) => u.id).sort();
  out.kind = found.users.find((u) => u.id === 'js-ann').kind;

  const channel = client.channel('messaging', 'js-room', {
    members: ['js-ann', 'js-bob'], created_by_id: 'js-ann', name: 'JS room',
  });
  const state = await channel.create();
  out.members = state.members.map((m) => m.user_id);

  try {
    await channel.addMembers(['js-ghost-1', 'js-ghost-2']);
  } catch (error) {
    out.addError = { code: error.code, status: error.status, message: error.message };
  }

  const sent = await channel.sendMessage({ text: 'from node', user_id: 'js-ann' });
  out.messageText = sent.message.text;

  const channels = await client.queryChannels({ cid: 'messaging:js-room' });
  out.channelName = channels[0].data.name;

  const deleted = await channel.delete();
  out.deleted = Boolean(deleted.channel.deleted_at);
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((error) => {
  process.stderr.write(`${error.stack || error}\n`);
  process.exit(1);
});
