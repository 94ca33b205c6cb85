import { InvalidArgumentError, type Command } from 'commander';
import type { AppAction } from '../commands/app.js';
import { CONSENT_ARGUMENT_TEXT } from './consent.js';
import { registerKeygen } from './keygen.js';
import { positiveNumber, timeoutOption, type CliContext } from './options.js';

/** `camveil app …`: the phone app played from a terminal, over MQTT. */
export function registerApp(program: Command, ctx: CliContext): void {
  const app = program
    .command('app')
    .description('play the phone app from a terminal, over MQTT: keygen, pair, status, consent, cameras, faces, events');
  registerKeygen(app, ctx, {
    description: "the household's age identity, as the phone app would hold it (stdout; recipient on stderr)",
    pq: 'a post-quantum hybrid identity',
  });
  const appConsent = app.command('consent').description("the household's consents: grant (signed), withdraw, accept-policy (signed)");
  const appCameras = app.command('cameras').description('cameras the app manages: add (password sealed to the hub), remove');
  const appFaces = app.command('faces').description('enrolled people: enrol and add-photos (photos sealed to the hub), list, sightings, correct');
  const appDevices = app.command('devices').description('other phones: key (this device\'s public key), add (signed; gives the new device the pinned hub keys)');
  type AppGlobal = { broker: string; hub: string; state: string; baseTopic?: string; pinFrom?: string; timeout?: number };
  const appCommand = (name: string, description: string, parent: Command = app) =>
    parent
      .command(name)
      .description(description)
      .requiredOption('--broker <url>', 'the MQTT broker, e.g. mqtt://127.0.0.1:1883')
      .requiredOption('--hub <id>', 'the hub id (hub.id in its configuration)')
      .requiredOption('--state <file>', "the app's key and sequence number (created on first use, chmod 600)")
      .option('--base-topic <topic>', 'MQTT base topic', 'camveil')
      .option('--pin-from <file>', 'pin the hub keys in this bundle (from `devices add --out` on a paired device) before anything is sent')
      .addOption(timeoutOption("how long to wait for the hub's reply (default 10; 120 for faces enrol and add-photos)"));
  const runAppAction = async (action: AppAction, opts: AppGlobal) => {
    const { runApp } = await import('../commands/app.js');
    await ctx.run(() => runApp(action, opts.timeout === undefined ? opts : { ...opts, timeoutSeconds: opts.timeout }, ctx.io));
  };
  appCommand('pair', 'pair this app with the hub, using the code `camveil pair` shows')
    .requiredOption('--code <code>', 'the pairing code')
    .requiredOption('-i, --identity <file>', "the household identity file: its recipient is registered for this phone's alerts")
    .option('--label <label>', 'a name for this device')
    .action((opts: AppGlobal & { code: string; identity: string; label?: string }) =>
      runAppAction({ kind: 'pair', code: opts.code, identity: opts.identity, ...(opts.label === undefined ? {} : { label: opts.label }) }, opts),
    );
  appCommand('status', "the hub's health, and its full state when --identity opens the sealed part")
    .option('-i, --identity <file>', 'the household identity file: decrypts the sealed full state')
    .action((opts: AppGlobal & { identity?: string }) => runAppAction({ kind: 'status', ...(opts.identity === undefined ? {} : { identity: opts.identity }) }, opts));
  for (const action of ['grant', 'withdraw'] as const) {
    appCommand(action, `${action} a consent (signed; --unsigned to see the hub's answer without a signature)`, appConsent)
      .argument('<consent>', CONSENT_ARGUMENT_TEXT)
      .option('--unsigned', 'send without a signature')
      .action((consentName: string, opts: AppGlobal & { unsigned?: boolean }) =>
        runAppAction({ kind: 'consent', action, consent: consentName, ...(opts.unsigned === true ? { unsigned: true } : {}) }, opts),
      );
  }
  appCommand('accept-policy', 'accept a privacy-policy version (signed)', appConsent)
    .argument('<version>', 'e.g. 2021-10-31')
    .action((version: string, opts: AppGlobal) => runAppAction({ kind: 'consent', action: 'accept-policy', version }, opts));
  appCommand('add', "add a camera to the hub; its password is sealed to the hub's key (signed request)", appCameras)
    .requiredOption('--id <id>', 'camera id')
    .requiredOption('--source <url>', 'rtsp://… or an ONVIF URL, without credentials')
    .option('--sub-source <url>', 'a lower-resolution stream for analysis')
    .option('--user <name>', 'camera user name')
    .option('--password-file <file>', 'file whose first line is the camera password')
    .action((opts: AppGlobal & { id: string; source: string; subSource?: string; user?: string; passwordFile?: string }) =>
      runAppAction(
        {
          kind: 'cameras-add',
          id: opts.id,
          source: opts.source,
          ...(opts.subSource === undefined ? {} : { subSource: opts.subSource }),
          ...(opts.user === undefined ? {} : { user: opts.user }),
          ...(opts.passwordFile === undefined ? {} : { passwordFile: opts.passwordFile }),
        },
        opts,
      ),
    );
  appCommand('key', "this device's app key id and public key, for `devices add` on a paired device (creates --state)", appDevices).action((opts: AppGlobal) =>
    runAppAction({ kind: 'devices-key' }, opts),
  );
  appCommand('add', "add another device's key (signed); prints, or writes to --out, the hub keys this app pinned, for that device's --pin-from", appDevices)
    .requiredOption('--public-key <key>', "the new device's Ed25519 public key (base64, from its `devices key`)")
    .requiredOption('--recipient <age1…>', "the new device's age recipient (its alerts are sealed to it)")
    .option('--label <label>', 'a name for the new device')
    .option('--out <file>', 'write the pinned-hub bundle {hubId, baseTopic, signingKey, recipient} here')
    .action((opts: AppGlobal & { publicKey: string; recipient: string; label?: string; out?: string }) =>
      runAppAction(
        {
          kind: 'devices-add',
          publicKey: opts.publicKey,
          recipient: opts.recipient,
          ...(opts.label === undefined ? {} : { label: opts.label }),
          ...(opts.out === undefined ? {} : { out: opts.out }),
        },
        opts,
      ),
    );
  appCommand('remove', 'remove a camera the app added (signed request)', appCameras)
    .requiredOption('--id <id>', 'camera id')
    .action((opts: AppGlobal & { id: string }) => runAppAction({ kind: 'cameras-remove', id: opts.id }, opts));
  appCommand('enrol', 'enrol a person: name and photos sealed to the hub, the request signed', appFaces)
    .requiredOption('--name <name>', "the person's name")
    .requiredOption('--photo <file...>', 'one or more photos, each with exactly one face')
    .option('--minor', 'the person is under 18 (a guardian attestation is then required)')
    .option('--keep-photos', 'ask the hub to keep the photos, sealed to its key')
    .action((opts: AppGlobal & { name: string; photo: string[]; minor?: boolean; keepPhotos?: boolean }) =>
      runAppAction(
        { kind: 'faces-enrol', name: opts.name, photos: opts.photo, ...(opts.minor === true ? { minor: true } : {}), ...(opts.keepPhotos === true ? { keepPhotos: true } : {}) },
        opts,
      ),
    );
  appCommand('add-photos', "add photos to an enrolled person: photos sealed to the hub, the request signed", appFaces)
    .argument('<person>', 'the person id')
    .argument('<photos...>', 'one or more photos, each with exactly one face')
    .option('--keep-photos', 'ask the hub to keep the photos, sealed to its key')
    .action((person: string, photos: string[], opts: AppGlobal & { keepPhotos?: boolean }) =>
      runAppAction({ kind: 'faces-add-photos', personId: person, photos, ...(opts.keepPhotos === true ? { keepPhotos: true } : {}) }, opts),
    );
  appCommand('correct', 'correct a sighting from an alert: --is PERSON or --not PERSON (signed; --unsigned to see it refused)', appFaces)
    .argument('<sighting>', 'the sighting id (sight_…) from an alert')
    .option('--is <person>', 'the sighting shows this person')
    .option('--not <person>', 'the sighting does not show this person')
    .option('--unsigned', 'send without a signature')
    .action((sighting: string, opts: AppGlobal & { is?: string; not?: string; unsigned?: boolean }) => {
      if ((opts.is === undefined) === (opts.not === undefined)) throw new InvalidArgumentError('give one of --is PERSON or --not PERSON');
      return runAppAction(
        { kind: 'faces-correct', sightingId: sighting, personId: (opts.is ?? opts.not)!, verdict: opts.is === undefined ? 'is-not' : 'is', ...(opts.unsigned === true ? { unsigned: true } : {}) },
        opts,
      );
    });
  appCommand('sightings', 'recent face sightings; they come sealed to this phone and are decrypted here', appFaces)
    .requiredOption('-i, --identity <file>', 'the household identity file')
    .option('--limit <n>', 'at most this many (1–500)', positiveNumber)
    .action((opts: AppGlobal & { identity: string; limit?: number }) =>
      runAppAction({ kind: 'faces-sightings', identity: opts.identity, ...(opts.limit === undefined ? {} : { limit: Math.floor(opts.limit) }) }, opts),
    );
  appCommand('list', 'the enrolled people; names come sealed to this phone and are decrypted here', appFaces)
    .requiredOption('-i, --identity <file>', 'the household identity file')
    .action((opts: AppGlobal & { identity: string }) => runAppAction({ kind: 'faces-list', identity: opts.identity }, opts));
  appCommand('events', "follow the hub's sealed alerts, decrypted with the household identity")
    .requiredOption('-i, --identity <file>', 'the household identity file')
    .option('--follow', 'keep following until Ctrl-C (the default)')
    .option('--for <seconds>', 'stop after this many seconds', positiveNumber)
    .action((opts: AppGlobal & { identity: string; for?: number }) =>
      runAppAction({ kind: 'events', identity: opts.identity, ...(opts.for === undefined ? {} : { for: opts.for }) }, opts),
    );

}
