// Drives the npm stream-chat *client* SDK against the emulator the way the OneCrew app does: each user
// connects with a user token (connectUser over the /connect WebSocket), lists and watches channels,
// sends, pages back, reads, reacts, types, edits and deletes, and sees the other user's events.
// Prints what it saw as one JSON line. Every wait is on an event with a deadline, never a sleep.
// Usage: node client_app.js BASE_URL API_KEY '{"tokens": {"user id": "token", ...}, "cid": "messaging:id"}'
const { client, next, refused } = require('./app_sdk');

async function main() {
  const [baseURL, key, configJSON] = process.argv.slice(2);
  const { tokens, cid } = JSON.parse(configJSON);
  const [type, id] = cid.split(':');
  const out = {};

  // --- connect ------------------------------------------------------------------------------
  const ann = client(baseURL, key);
  const bob = client(baseURL, key);
  const annMe = await ann.connectUser({ id: 'ann', name: 'Ann' }, tokens.ann);
  const bobMe = await bob.connectUser({ id: 'bob' }, tokens.bob);
  out.connected = { ann: annMe.me.id, bob: bobMe.me.id, annOnline: annMe.me.online };
  out.connectionIds = [ann.wsConnection.connectionID, bob.wsConnection.connectionID];

  // --- the channel list and the chat screen ------------------------------------------------
  const listed = await ann.queryChannels(
    { type: 'messaging', members: { $in: ['ann'] } },
    [{ last_message_at: -1 }],
    { watch: true, state: true, message_limit: 10 },
  );
  out.listed = listed.map((c) => c.cid);
  const annRoom = listed[0];
  out.firstPage = annRoom.state.messages.map((m) => m.text);
  const older = await annRoom.query({ messages: { limit: 10, id_lt: annRoom.state.messages[0].id } });
  out.olderPage = older.messages.map((m) => m.text);
  const newer = await annRoom.query({ messages: { limit: 5, id_gt: older.messages[0].id } });
  out.newerPage = newer.messages.map((m) => m.text);

  const bobRoom = bob.channel(type, id);
  const watched = await bobRoom.watch();
  out.bobWatch = {
    members: watched.members.map((m) => m.user_id).sort(),
    watchers: watched.watchers.map((u) => u.id).sort(),
    membership: watched.membership && watched.membership.user_id,
  };

  // --- messages and their events ---------------------------------------------------------
  const bobGetsNew = next(bob, 'message.new', (e) => e.message.text === 'hello bob');
  const sent = await annRoom.sendMessage({ text: 'hello bob' });
  const newEvent = await bobGetsNew;
  out.messageNew = { text: newEvent.message.text, user: newEvent.user.id, cid: newEvent.cid };
  out.bobUnreadAfterNew = bobRoom.countUnread();

  const annGetsTyping = next(ann, 'typing.start', (e) => e.user.id === 'bob');
  await bobRoom.keystroke();
  out.typing = (await annGetsTyping).user.id;
  const annGetsStop = next(ann, 'typing.stop', (e) => e.user.id === 'bob');
  await bobRoom.stopTyping();
  out.typingStop = (await annGetsStop).user.id;

  const annGetsRead = next(ann, 'message.read', (e) => e.user.id === 'bob');
  const bobGetsMarkRead = next(bob, 'notification.mark_read');
  await bobRoom.markRead();
  out.read = (await annGetsRead).user.id;
  out.markReadTotal = (await bobGetsMarkRead).total_unread_count;

  const annGetsReaction = next(ann, 'reaction.new', (e) => e.reaction.type === 'love');
  const reacted = await bobRoom.sendReaction(sent.message.id, { type: 'love' });
  out.reaction = { type: (await annGetsReaction).reaction.type, counts: reacted.message.reaction_counts };
  const annGetsUnreact = next(ann, 'reaction.deleted');
  await bobRoom.deleteReaction(sent.message.id, 'love');
  out.reactionDeleted = (await annGetsUnreact).reaction.type;

  const bobGetsUpdate = next(bob, 'message.updated');
  await ann.updateMessage({ id: sent.message.id, text: 'hello bob (edited)' });
  out.updated = (await bobGetsUpdate).message.text;
  out.notYours = await refused(bob.updateMessage({ id: sent.message.id, text: 'bob was here' }));
  const bobGetsDelete = next(bob, 'message.deleted');
  await ann.deleteMessage(sent.message.id);
  out.deleted = (await bobGetsDelete).message.type;

  const unread = await annRoom.sendMessage({ text: 'unread from here' });
  await annRoom.markRead();
  const annGetsMarkUnread = next(ann, 'notification.mark_unread');
  await annRoom.markUnread({ message_id: unread.message.id });
  out.markUnread = (await annGetsMarkUnread).unread_messages;

  // --- a member not watching gets notifications -------------------------------------------
  await bobRoom.stopWatching();
  const bobGetsNotification = next(bob, 'notification.message_new');
  await annRoom.sendMessage({ text: 'while bob looks elsewhere' });
  out.notification = (await bobGetsNotification).message.text;
  await bobRoom.watch();

  // --- who is not a member cannot open the channel ----------------------------------------
  const eve = client(baseURL, key);
  await eve.connectUser({ id: 'eve' }, tokens.eve);
  const eveRoom = eve.channel(type, id);
  out.eveWatch = await refused(eveRoom.watch());
  out.eveList = (await eve.queryChannels({ cid })).map((c) => c.cid);

  const eveGetsAdded = next(eve, 'notification.added_to_channel');
  const bobGetsMember = next(bob, 'member.added', (e) => e.user.id === 'eve');
  await annRoom.addMembers(['eve']);
  out.added = { eve: (await eveGetsAdded).channel.cid, bob: (await bobGetsMember).user.id };
  out.eveWatchAfterAdd = (await eveRoom.watch()).membership.user_id;

  const bobGetsRename = next(bob, 'channel.updated');
  await annRoom.updatePartial({ set: { name: 'Renamed' } });
  out.renamed = (await bobGetsRename).channel.name;
  // The event's channel does not replace bob's own capabilities with anyone else's.
  out.bobCapabilities = {
    send: bobRoom.data.own_capabilities.includes('send-message'),
    deleteAny: bobRoom.data.own_capabilities.includes('delete-any-message'),
  };
  // Nor does ann's own update answer (the SDK takes the channel it returns).
  out.annDeleteAnyAfterRename = annRoom.data.own_capabilities.includes('delete-any-message');

  // --- push devices and uploads ------------------------------------------------------------
  await bob.addDevice('bob-phone-token', 'firebase');
  out.devices = (await bob.getDevices()).devices.map((d) => d.id);
  const image = await bobRoom.sendImage(Buffer.from('\x89PNG fake image bytes'), 'photo.png', 'image/png');
  const fetched = await fetch(image.file);
  out.upload = { status: fetched.status, type: fetched.headers.get('content-type'), body: await fetched.text() };

  // --- reconnect: the emulator drops bob's socket; the SDK reconnects and re-watches -------
  const recovered = next(bob, 'connection.recovered');
  const dropped = await fetch(`${baseURL}/_emulator/connections/drop`, {
    method: 'POST',
    body: JSON.stringify({ user_id: 'bob' }),
  });
  out.dropped = (await dropped.json()).dropped;
  await recovered;
  out.reconnectedWithNewId = bob.wsConnection.connectionID !== out.connectionIds[1];
  const bobGetsAfterReconnect = next(bob, 'message.new', (e) => e.message.text === 'after the reconnect');
  await annRoom.sendMessage({ text: 'after the reconnect' });
  out.afterReconnect = (await bobGetsAfterReconnect).message.text;

  // --- a clean close: bob goes offline and ann, watching, is told ---------------------------
  const annSeesBobLeave = next(ann, 'user.presence.changed', (e) => e.user.id === 'bob' && !e.user.online);
  await bob.disconnectUser();
  out.presence = (await annSeesBobLeave).user.online;

  await Promise.all([ann.disconnectUser(), eve.disconnectUser()]);
  // The SDK keeps timers (reconnect checks, delivery reports) that would hold Node open for seconds.
  process.stdout.write(JSON.stringify(out) + '\n', () => process.exit(0));
}

main().catch((error) => {
  process.stderr.write(`${error.stack || error}\n`);
  process.exit(1);
});
