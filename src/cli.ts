import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { asCamveilError, CamveilError, exitCodeFor } from './errors.js';
import { LOG_LEVELS, type LogLevel } from './log.js';
import { processIO, type CommandIO } from './commands/io.js';

/** Options every command understands. */
export interface GlobalOptions {
  logLevel?: LogLevel;
  pretty?: boolean;
}

function positiveNumber(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('must be a positive number');
  return n;
}

/**
 * Builds the `camveil` command line. Each action loads its module lazily so that, say, `config check`
 * does not start TensorFlow or open sockets. Actions return an exit code; nothing here holds logic.
 */
export function buildProgram(io: CommandIO, setExitCode: (code: number) => void): Command {
  const program = new Command('camveil')
    .description('Camera-side privacy gateway: motion clips and faces stay on the hub unless encrypted and allowed.')
    .version('0.1.0')
    .addOption(new Option('--log-level <level>', 'log level').choices(LOG_LEVELS))
    .option('--pretty', 'human-readable logs instead of JSON lines')
    .showHelpAfterError()
    .configureOutput({ writeOut: (s) => io.stdout(s), writeErr: (s) => io.stderr(s) })
    .exitOverride();

  const globals = (): GlobalOptions => program.opts<GlobalOptions>();
  const run = (action: () => Promise<number> | number) => async () => {
    setExitCode(await action());
  };

  program
    .command('run')
    .description('run the gateway with a configuration file')
    .requiredOption('-c, --config <file>', 'configuration file (YAML or JSON)')
    .action(async (opts: { config: string }) => {
      const { runService } = await import('./commands/run.js');
      await run(() => runService(opts.config, globals(), io))();
    });

  program
    .command('demo')
    .description('run the gateway on embedded defaults: a looping sample camera, everything on loopback')
    .option('--for <seconds>', 'stop after this many seconds (default: until Ctrl-C)', positiveNumber)
    .option('--data-dir <dir>', 'where the demo keeps its state (default: a fresh temporary directory)')
    .option('--region <code>', 'the hub region (ISO 3166): the region rules decide about face recognition and residency', 'DE')
    .action(async (opts: { for?: number; dataDir?: string; region?: string }) => {
      const { runDemo } = await import('./commands/demo.js');
      await run(() => runDemo(opts, globals(), io))();
    });

  const config = program.command('config').description('configuration tools');
  config
    .command('check')
    .description('validate a configuration file: exit 0 when valid, 2 with every problem listed')
    .argument('<file>', 'configuration file (YAML or JSON)')
    .action(async (file: string) => {
      const { runConfigCheck } = await import('./commands/config-check.js');
      await run(() => runConfigCheck(file, io))();
    });

  program
    .command('probe')
    .description('inspect a camera: an rtsp:// URL or an ONVIF device service URL (http://host:port/onvif/device_service)')
    .argument('<url>', 'camera URL, without credentials')
    .option('--user <name>', 'user name')
    .option('--password-file <file>', 'file whose first line is the password (or set CAMVEIL_PASSWORD)')
    .option('--timeout <seconds>', 'give up after this many seconds', positiveNumber)
    .option('--json', 'print one JSON document')
    .action(async (url: string, opts: { user?: string; passwordFile?: string; json?: boolean; timeout?: number }) => {
      const { runProbe } = await import('./commands/probe.js');
      await run(() => runProbe(url, opts, io))();
    });

  program
    .command('discover')
    .description('find ONVIF cameras on the local network (WS-Discovery)')
    .option('--timeout <seconds>', 'how long to listen for answers', positiveNumber)
    .option('--json', 'print one JSON document')
    .action(async (opts: { timeout?: number; json?: boolean }) => {
      const { runDiscover } = await import('./commands/discover.js');
      await run(() => runDiscover(opts, io))();
    });

  program
    .command('keygen')
    .description('print a new household age identity to stdout and its recipient to stderr (as age-keygen does)')
    .option('--pq', 'a post-quantum hybrid identity (ML-KEM-768 + X25519, age1pq1…)')
    .action(async (opts: { pq?: boolean }) => {
      const { runKeygen } = await import('./commands/keygen.js');
      await run(() => runKeygen(opts, io))();
    });

  const consent = program.command('consent').description("the household's consents, on the hub's own console (the app uses MQTT)");
  const consentAction = (build: (arg: string) => import('./commands/consent.js').ConsentAction) => async (arg: string, opts: { config: string; json?: boolean }) => {
    const { runConsent } = await import('./commands/consent.js');
    await run(() => runConsent(build(arg), opts, io))();
  };
  consent
    .command('show')
    .description('the consents, the accepted policy version and the mode')
    .requiredOption('-c, --config <file>', 'the hub configuration file')
    .option('--json', 'print one JSON document')
    .action(async (opts: { config: string; json?: boolean }) => {
      const { runConsent } = await import('./commands/consent.js');
      await run(() => runConsent({ kind: 'show' }, opts, io))();
    });
  for (const kind of ['grant', 'withdraw'] as const) {
    consent
      .command(kind)
      .description(`${kind} a consent: cloudUpload, faceRecognition, crossBorderTransfer or localRecording`)
      .argument('<consent>', 'cloudUpload | faceRecognition | crossBorderTransfer | localRecording')
      .requiredOption('-c, --config <file>', 'the hub configuration file')
      .option('--json', 'print one JSON document')
      .action(consentAction((consentName) => ({ kind, consent: consentName })));
  }
  consent
    .command('accept-policy')
    .description('accept a privacy-policy version (a material version must be accepted before data flows)')
    .argument('<version>', 'e.g. 2021-10-31')
    .requiredOption('-c, --config <file>', 'the hub configuration file')
    .option('--json', 'print one JSON document')
    .action(consentAction((version) => ({ kind: 'accept-policy', version })));

  const faces = program.command('faces').description('the face model on photos, and the people enrolled on this hub');
  faces
    .command('detect')
    .description('the faces found in an image: box, score and quality verdict')
    .argument('<image>', 'a JPEG, PNG or WebP file')
    .option('--json', 'print one JSON document')
    .action(async (image: string, opts: { json?: boolean }) => {
      const { runFacesDetect } = await import('./commands/faces.js');
      await run(() => runFacesDetect(image, opts, io))();
    });
  faces
    .command('compare')
    .description('the distance between the best face of each image, the threshold and the verdict; exit 2 when an image holds no usable face')
    .argument('<image1>', 'first image')
    .argument('<image2>', 'second image')
    .option('--json', 'print one JSON document')
    .action(async (image1: string, image2: string, opts: { json?: boolean }) => {
      const { runFacesCompare } = await import('./commands/faces.js');
      await run(() => runFacesCompare(image1, image2, opts, io))();
    });

  faces
    .command('enrol')
    .alias('enroll')
    .description('enrol a person from reference photos (each must hold exactly one usable face); name and templates are sealed to the hub key')
    .requiredOption('-c, --config <file>', 'the hub configuration file')
    .requiredOption('--name <name>', "the person's name (stored encrypted)")
    .requiredOption('--photo <file...>', 'one or more reference photos (not kept unless --keep-photos)')
    .option('--keep-photos', 'keep the photos on the hub, sealed to its key')
    .option('--minor', 'the person is under 18: a guardian attestation is required')
    .option('--guardian-key <keyId>', "the guardian's paired key id or name for the attestation")
    .option('--guardian-statement <text>', "the guardian's consent statement")
    .option('--json', 'print one JSON document')
    .action(async (opts: { config: string; name: string; photo: string[]; minor?: boolean; guardianKey?: string; guardianStatement?: string; keepPhotos?: boolean; json?: boolean }) => {
      const { runFacesEnrol } = await import('./commands/faces-enrol.js');
      const { photo, ...rest } = opts;
      await run(() => runFacesEnrol({ ...rest, photos: photo }, io))();
    });
  faces
    .command('list')
    .description('the people enrolled on this hub')
    .requiredOption('-c, --config <file>', 'the hub configuration file')
    .option('--json', 'print one JSON document')
    .action(async (opts: { config: string; json?: boolean }) => {
      const { runFacesList } = await import('./commands/faces-enrol.js');
      await run(() => runFacesList(opts, io))();
    });
  faces
    .command('rename')
    .description("correct an enrolled person's name")
    .requiredOption('-c, --config <file>', 'the hub configuration file')
    .requiredOption('--person <id>', 'the person id (see faces list)')
    .requiredOption('--name <name>', 'the new name (stored encrypted)')
    .action(async (opts: { config: string; person: string; name: string }) => {
      const { runFacesRename } = await import('./commands/faces-enrol.js');
      await run(() => runFacesRename({ config: opts.config, personId: opts.person, name: opts.name }, io))();
    });
  faces
    .command('delete')
    .description('delete an enrolled person (templates gone at once), or everyone with --all')
    .requiredOption('-c, --config <file>', 'the hub configuration file')
    .option('--person <id>', 'the person id (see faces list)')
    .option('--all', 'delete every enrolled person')
    .action(async (opts: { config: string; person?: string; all?: boolean }) => {
      const { runFacesDelete } = await import('./commands/faces-enrol.js');
      await run(() => runFacesDelete({ config: opts.config, ...(opts.person === undefined ? {} : { personId: opts.person }), ...(opts.all === true ? { all: true } : {}) }, io))();
    });
  faces
    .command('add-photos')
    .description('add reference photos to an enrolled person (each must hold exactly one usable face; all or none)')
    .argument('<person>', 'the person id (see faces list)')
    .argument('<photos...>', 'one or more photos')
    .requiredOption('-c, --config <file>', 'the hub configuration file')
    .option('--keep-photos', 'keep the photos on the hub, sealed to its key (default: not kept)')
    .option('--json', 'print one JSON document')
    .action(async (person: string, photos: string[], opts: { config: string; keepPhotos?: boolean; json?: boolean }) => {
      const { runFacesAddPhotos } = await import('./commands/faces-enrol.js');
      await run(() => runFacesAddPhotos({ ...opts, personId: person, photos }, io))();
    });
  faces
    .command('correct')
    .description('correct a sighting: --is PERSON adds its face to the person; --not PERSON keeps it so that face is not taken for them again')
    .argument('<sighting>', 'the sighting id (sight_…, from an alert or faces sightings)')
    .requiredOption('-c, --config <file>', 'the hub configuration file')
    .option('--is <person>', 'the sighting shows this person')
    .option('--not <person>', 'the sighting does not show this person')
    .option('--json', 'print one JSON document')
    .action(async (sighting: string, opts: { config: string; is?: string; not?: string; json?: boolean }) => {
      const { runFacesCorrect } = await import('./commands/faces-enrol.js');
      await run(() => runFacesCorrect({ ...opts, sightingId: sighting }, io))();
    });
  faces
    .command('sightings')
    .description('recent confirmed face sightings (id, time, camera, event, person or unknown), newest first')
    .requiredOption('-c, --config <file>', 'the hub configuration file')
    .option('--limit <n>', 'at most this many', positiveNumber)
    .option('--json', 'print one JSON document')
    .action(async (opts: { config: string; limit?: number; json?: boolean }) => {
      const { runFacesSightings } = await import('./commands/faces-enrol.js');
      await run(() => runFacesSightings(opts, io))();
    });

  program
    .command('pair')
    .description('show a one-time pairing code (10 minutes, one use) for the phone app')
    .requiredOption('-c, --config <file>', 'the hub configuration file')
    .option('--json', 'print one JSON document')
    .action(async (opts: { config: string; json?: boolean }) => {
      const { runPair } = await import('./commands/pair.js');
      await run(() => runPair(opts, io))();
    });

  const app = program
    .command('app')
    .description('play the phone app from a terminal, over MQTT: keygen, pair, status, consent, cameras, faces, events');
  app
    .command('keygen')
    .description("the household's age identity, as the phone app would hold it (stdout; recipient on stderr)")
    .option('--pq', 'a post-quantum hybrid identity')
    .action(async (opts: { pq?: boolean }) => {
      const { runKeygen } = await import('./commands/keygen.js');
      await run(() => runKeygen(opts, io))();
    });
  const appConsent = app.command('consent').description("the household's consents: grant (signed), withdraw, accept-policy (signed)");
  const appCameras = app.command('cameras').description('cameras the app manages: add (password sealed to the hub), remove');
  const appFaces = app.command('faces').description('enrolled people: enroll and add-photos (photos sealed to the hub), list, sightings, correct');
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
      .option('--timeout <seconds>', "how long to wait for the hub's reply (default 10; 120 for faces enroll and add-photos)", positiveNumber);
  const runAppAction = async (action: import('./commands/app.js').AppAction, opts: AppGlobal) => {
    const { runApp } = await import('./commands/app.js');
    await run(() => runApp(action, opts.timeout === undefined ? opts : { ...opts, timeoutSeconds: opts.timeout }, io))();
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
      .argument('<consent>', 'cloudUpload | faceRecognition | crossBorderTransfer | localRecording')
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
  appCommand('enroll', 'enrol a person: name and photos sealed to the hub, the request signed', appFaces)
    .requiredOption('--name <name>', "the person's name")
    .requiredOption('--photo <file...>', 'one or more photos, each with exactly one face')
    .option('--minor', 'the person is under 18 (a guardian attestation is then required)')
    .option('--keep-photos', 'ask the hub to keep the photos, sealed to its key')
    .action((opts: AppGlobal & { name: string; photo: string[]; minor?: boolean; keepPhotos?: boolean }) =>
      runAppAction(
        { kind: 'faces-enroll', name: opts.name, photos: opts.photo, ...(opts.minor === true ? { minor: true } : {}), ...(opts.keepPhotos === true ? { keepPhotos: true } : {}) },
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

  const data = program.command('data').description("the household's data-subject rights: export and deletion");
  data
    .command('export')
    .description('everything the hub holds about the household, as one age file sealed to the household recipients')
    .requiredOption('-c, --config <file>', 'the hub configuration file')
    .requiredOption('-o, --out <file>', 'where the sealed export goes')
    .action(async (opts: { config: string; out: string }) => {
      const { runDataExport } = await import('./commands/data.js');
      await run(() => runDataExport(opts, io))();
    });
  data
    .command('delete')
    .description('delete every object, event and consent record, and ask the cloud to delete what it received')
    .requiredOption('-c, --config <file>', 'the hub configuration file')
    .option('--yes', 'confirm')
    .action(async (opts: { config: string; yes?: boolean }) => {
      const { runDataDelete } = await import('./commands/data.js');
      await run(() => runDataDelete(opts, io))();
    });

  const audit = program.command('audit').description("the hub's hash-chained audit log");
  audit
    .command('verify')
    .description("check the chain and that it still reaches the hub's signed anchor: exit 0 when intact, 1 naming the first broken record or the rollback")
    .requiredOption('--data-dir <dir>', "the hub's data directory")
    .option('--head <seq:hash>', 'also check the log still holds this head (one kept earlier, e.g. from the app)')
    .action(async (opts: { dataDir: string; head?: string }) => {
      const { runAuditVerify } = await import('./commands/audit.js');
      await run(() => runAuditVerify(opts, io))();
    });
  audit
    .command('export')
    .description('the whole log as JSON lines, age-encrypted to the household recipients')
    .requiredOption('-c, --config <file>', 'the hub configuration file (for the data directory and the recipients)')
    .option('-o, --out <file>', 'where the encrypted log goes (default: stdout)')
    .action(async (opts: { config: string; out?: string }) => {
      const { loadConfigFile } = await import('./config/load.js');
      const { runAuditExport } = await import('./commands/audit.js');
      const config = loadConfigFile(opts.config);
      if (config.household === undefined) throw new CamveilError('CAMVEIL_E_CONFIG_INVALID', `${opts.config}: household.recipients is needed to encrypt the export`);
      const recipients = config.household.recipients;
      await run(() => runAuditExport({ dataDir: config.dataDir, recipients, ...(opts.out === undefined ? {} : { out: opts.out }) }, io))();
    });

  program
    .command('open')
    .description("decrypt a sealed object as the household app does: prints its manifest, writes its body")
    .argument('<object>', 'an .age object from the hub or the cloud')
    .requiredOption('-i, --identity <file>', 'the household identity file (as made by camveil keygen or age-keygen)')
    .option('-o, --out <file>', 'where the body goes (default: stdout)')
    .action(async (object: string, opts: { identity: string; out?: string }) => {
      const { runOpen } = await import('./commands/open.js');
      await run(() => runOpen(object, opts, io))();
    });

  program
    .command('receiver')
    .description(
      'the reference cloud receiver: stores age-encrypted objects PUT to /v1/objects/<hub>/<id>, refuses anything else; ' +
        "`receiver add-hub <pseudonym> --tokens FILE` adds a hub to its tokens file and prints the hub's new token once",
    )
    // One command with an optional sub-action: a `receiver add-hub` subcommand would have to repeat --tokens
    // and inherit --dir as required.
    .argument('[action]', 'add-hub, or nothing to run the receiver')
    .argument('[pseudonym]', "with add-hub: the hub's pseudonym (hub_…, its state.hub)")
    .option('--dir <dir>', 'where received objects are kept (required to run the receiver)')
    .option('--port <port>', 'TCP port on 127.0.0.1 (default: an ephemeral port)', positiveNumber)
    .option('--tokens <file>', 'per-hub tokens file (JSON, mode 0600); a running receiver re-reads it on SIGHUP')
    .option('--open', 'run without any authentication (a receiver on the hub itself, tests)')
    .option('--token-file <file>', 'removed (one token for every hub): the error says how to migrate')
    .option('--read', 'add-hub: also issue a household read token (list and fetch only)')
    .option('--upload-token-file <file>', "add-hub: bind this existing token (the hub's uplink.tokenFile) instead of issuing one")
    .option('--replace', 'add-hub: replace an existing entry for this hub')
    .action(async (action: string | undefined, hub: string | undefined, opts: import('./commands/receiver.js').ReceiverCliOptions) => {
      const { runReceiverCli } = await import('./commands/receiver.js');
      await run(() => runReceiverCli(action, hub, opts, io))();
    });

  return program;
}

/** Runs the CLI and returns the process exit code (2: bad usage or config; 1: failure). */
export async function runCli(argv: readonly string[], io: CommandIO = processIO): Promise<number> {
  let exitCode = 0;
  const program = buildProgram(io, (code) => (exitCode = code));
  try {
    await program.parseAsync(argv);
    return exitCode;
  } catch (error) {
    if (error instanceof CommanderError) {
      // --help and --version end through here with exit code 0.
      return error.exitCode === 0 ? 0 : 2;
    }
    const e = asCamveilError(error);
    io.stderr(`camveil: ${e.code}: ${e.message}`);
    return exitCodeFor(e);
  }
}
