// Pagehook example plugin in JavaScript: post blog posts to a Teams channel
// as an Adaptive Card 1.5.
//
// Built into a WebAssembly component with componentize-js against
// wit/plugin.wit (world `plugin` of `pagehook:plugin@0.3.0`); see build.sh.
//
// How the WIT types look from JavaScript (componentize-js / jco conventions):
//   - records are objects with camelCase fields (event.byPagehook, content.spaceKey)
//   - enums are their kebab-case names as strings ('blog-created', 'info')
//   - option<T> is undefined/null or the value; u64 is a BigInt (content.id), u32 a number
//   - variants are { tag: 'post-teams', val: { ... } }
//   - a `result<T, string>` return: return T for ok, throw for err (see fail())
//   - settings is an array of [name, value] pairs
//
// Settings (from the binding):
//   channel  required  Teams channel name the admin defined
import log from 'log';

const KINDS = new Set(['blog-created', 'blog-updated']);
// Confluence update triggers that are not an author's edit (design.md: skip by default).
const IGNORED_TRIGGERS = new Set(['link_refactoring', 'view_page']);
// A Teams Workflows payload must stay under 28 KB; an excerpt is a teaser anyway.
const MAX_EXCERPT = 1000;

// Throwing from an exported function makes componentize-js return
// `err(payload)`: the `payload` property is the string the admin sees.
function fail(message) {
  const e = new Error(message);
  e.payload = message;
  throw e;
}

function settingsMap(settings) {
  const map = new Map();
  for (const [name, value] of settings) map.set(name, value);
  return map;
}

function required(conf, name) {
  const value = (conf.get(name) ?? '').trim();
  if (!value) fail(`setting \`${name}\` is required`);
  return value;
}

function skipReason(event) {
  if (!KINDS.has(event.kind)) return `kind ${event.kind} is not handled`;
  if (event.byPagehook) return 'caused by Pagehook itself';
  const content = event.content;
  if (!content) return 'no content';
  if (content.contentType !== 'blogpost') return `content type ${content.contentType} is not a blog post`;
  if (content.minorEdit) return 'minor edit';
  if (event.updateTrigger && IGNORED_TRIGGERS.has(event.updateTrigger)) {
    return `update trigger ${event.updateTrigger}`;
  }
  if (content.restricted) return 'content is view-restricted';
  return null;
}

function personName(person) {
  if (!person) return 'unknown';
  return person.displayName || person.username || person.key;
}

// Confluence text is content, not card markup: Teams reads TextBlock text and
// facts as markdown, where `[label](url)` is a link and `<at>Name</at>` spells
// a mention. Escape `&`, `<`, `>` as entities (renderers show the characters)
// and put an invisible U+200B after each `]` so no link syntax survives; the
// Rust SDK's `teams::markdown_escape` does the same.
function cardText(text) {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/\]/g, ']\u200B');
}

function truncate(text, max) {
  return text.length <= max ? text : `${text.slice(0, max - 1).trimEnd()}…`;
}

// The Adaptive Card (the card itself, not the Workflows envelope: the host wraps it).
function buildCard(event) {
  const content = event.content;
  const created = event.kind === 'blog-created';
  const space = content.spaceName ? `${content.spaceName} (${content.spaceKey})` : content.spaceKey;
  const facts = [
    { title: 'Space', value: cardText(space) },
    { title: created ? 'Author' : 'Updated by', value: cardText(personName(event.actor)) },
    { title: 'Version', value: String(content.version) },
  ];
  if (!created && content.versionMessage) {
    facts.push({ title: 'Change note', value: cardText(content.versionMessage) });
  }
  const body = [
    {
      type: 'TextBlock',
      text: created ? 'New blog post' : 'Blog post updated',
      size: 'Small',
      isSubtle: true,
      spacing: 'None',
    },
    {
      type: 'TextBlock',
      text: cardText(content.title),
      style: 'heading',
      size: 'Large',
      weight: 'Bolder',
      wrap: true,
    },
    { type: 'FactSet', facts },
  ];
  const excerpt = (content.excerpt ?? '').trim();
  if (excerpt) {
    body.push({ type: 'TextBlock', text: cardText(truncate(excerpt, MAX_EXCERPT)), wrap: true, spacing: 'Medium' });
  }
  return {
    type: 'AdaptiveCard',
    $schema: 'http://adaptivecards.io/schemas/adaptive-card.json',
    version: '1.5',
    body,
    actions: [{ type: 'Action.OpenUrl', title: 'Open blog post', url: content.url }],
  };
}

export function handle(event, settings) {
  try {
    return handleEvent(event, settings);
  } catch (e) {
    if (e && typeof e.payload === 'string') throw e;
    // componentize-js can only turn a thrown string (or an object with a
    // string `payload`) into `err`; anything else aborts the call with a
    // trap that names no cause. Report a bug in this code as `err` instead.
    if (e && e.stack) log('error', `${e}\n${e.stack}`);
    fail(`internal error: ${e}`);
  }
}

function handleEvent(event, settings) {
  // Settings first: a misconfigured binding fails on every event, so the
  // admin sees it at once rather than on the first blog post.
  const conf = settingsMap(settings);
  const channel = required(conf, 'channel');

  const skip = skipReason(event);
  if (skip !== null) {
    log('debug', `event ${event.id}: skipped, ${skip}`);
    return [];
  }

  const card = buildCard(event);
  log('info', `event ${event.id}: blog post "${event.content.title}" to Teams channel ${channel}`);
  return [{ tag: 'post-teams', val: { channel, card: JSON.stringify(card) } }];
}
