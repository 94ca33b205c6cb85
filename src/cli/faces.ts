import type { Command } from 'commander';
import { configOption, jsonOption, positiveNumber, type CliContext, consoleCommand } from './options.js';

/** `camveil faces …`: the face model on photos, and the people enrolled on this hub (at its console). */
export function registerFaces(program: Command, ctx: CliContext): void {
  const faces = program.command('faces').description('the face model on photos, and the people enrolled on this hub');
  faces
    .command('detect')
    .description('the faces found in an image: box, score and quality verdict')
    .argument('<image>', 'a JPEG, PNG or WebP file')
    .addOption(jsonOption())
    .action(async (image: string, opts: { json?: boolean }) => {
      const { runFacesDetect } = await import('../commands/faces.js');
      await ctx.run(() => runFacesDetect(image, opts, ctx.io));
    });
  faces
    .command('compare')
    .description('the distance between the best face of each image, the threshold and the verdict; exit 2 when an image holds no usable face')
    .argument('<image1>', 'first image')
    .argument('<image2>', 'second image')
    .addOption(jsonOption())
    .action(async (image1: string, image2: string, opts: { json?: boolean }) => {
      const { runFacesCompare } = await import('../commands/faces.js');
      await ctx.run(() => runFacesCompare(image1, image2, opts, ctx.io));
    });

  consoleCommand(faces, 'enrol', 'enrol a person from reference photos (each must hold exactly one usable face); name and templates are sealed to the hub key')
    .requiredOption('--name <name>', "the person's name (stored encrypted)")
    .requiredOption('--photo <file...>', 'one or more reference photos (not kept unless --keep-photos)')
    .option('--keep-photos', 'keep the photos on the hub, sealed to its key')
    .option('--minor', 'the person is under 18: a guardian attestation is required')
    .option('--guardian-key <keyId>', "the guardian's paired key id or name for the attestation")
    .option('--guardian-statement <text>', "the guardian's consent statement")
    .addOption(jsonOption())
    .action(async (opts: { config: string; name: string; photo: string[]; minor?: boolean; guardianKey?: string; guardianStatement?: string; keepPhotos?: boolean; json?: boolean }) => {
      const { runFacesEnrol } = await import('../commands/faces-enrol.js');
      const { photo, ...rest } = opts;
      await ctx.run(() => runFacesEnrol({ ...rest, photos: photo }, ctx.io));
    });
  consoleCommand(faces, 'list', 'the people enrolled on this hub', { json: true })
    .action(async (opts: { config: string; json?: boolean }) => {
      const { runFacesList } = await import('../commands/faces-enrol.js');
      await ctx.run(() => runFacesList(opts, ctx.io));
    });
  consoleCommand(faces, 'rename', "correct an enrolled person's name")
    .requiredOption('--person <id>', 'the person id (see faces list)')
    .requiredOption('--name <name>', 'the new name (stored encrypted)')
    .action(async (opts: { config: string; person: string; name: string }) => {
      const { runFacesRename } = await import('../commands/faces-enrol.js');
      await ctx.run(() => runFacesRename({ config: opts.config, personId: opts.person, name: opts.name }, ctx.io));
    });
  consoleCommand(faces, 'delete', 'delete an enrolled person (templates gone at once), or everyone with --all')
    .option('--person <id>', 'the person id (see faces list)')
    .option('--all', 'delete every enrolled person')
    .action(async (opts: { config: string; person?: string; all?: boolean }) => {
      const { runFacesDelete } = await import('../commands/faces-enrol.js');
      await ctx.run(() => runFacesDelete({ config: opts.config, ...(opts.person === undefined ? {} : { personId: opts.person }), ...(opts.all === true ? { all: true } : {}) }, ctx.io));
    });
  faces
    .command('add-photos')
    .description('add reference photos to an enrolled person (each must hold exactly one usable face; all or none)')
    .argument('<person>', 'the person id (see faces list)')
    .argument('<photos...>', 'one or more photos')
    .addOption(configOption())
    .option('--keep-photos', 'keep the photos on the hub, sealed to its key (default: not kept)')
    .addOption(jsonOption())
    .action(async (person: string, photos: string[], opts: { config: string; keepPhotos?: boolean; json?: boolean }) => {
      const { runFacesAddPhotos } = await import('../commands/faces-enrol.js');
      await ctx.run(() => runFacesAddPhotos({ ...opts, personId: person, photos }, ctx.io));
    });
  faces
    .command('correct')
    .description('correct a sighting: --is PERSON adds its face to the person; --not PERSON keeps it so that face is not taken for them again')
    .argument('<sighting>', 'the sighting id (sight_…, from an alert or faces sightings)')
    .addOption(configOption())
    .option('--is <person>', 'the sighting shows this person')
    .option('--not <person>', 'the sighting does not show this person')
    .addOption(jsonOption())
    .action(async (sighting: string, opts: { config: string; is?: string; not?: string; json?: boolean }) => {
      const { runFacesCorrect } = await import('../commands/faces-enrol.js');
      await ctx.run(() => runFacesCorrect({ ...opts, sightingId: sighting }, ctx.io));
    });
  consoleCommand(faces, 'sightings', 'recent confirmed face sightings (id, time, camera, event, person or unknown), newest first')
    .option('--limit <n>', 'at most this many', positiveNumber)
    .addOption(jsonOption())
    .action(async (opts: { config: string; limit?: number; json?: boolean }) => {
      const { runFacesSightings } = await import('../commands/faces-enrol.js');
      await ctx.run(() => runFacesSightings(opts, ctx.io));
    });

}
