import { InvalidArgumentError, Option, type Command } from 'commander';
import type { CliContext } from './options.js';

/** Parses a score from 0 to 1; anything else is a usage error. */
function unitInterval(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0 || n > 1) throw new InvalidArgumentError('must be a number from 0 to 1');
  return n;
}

/** `camveil objects …`: the object model (people, vehicles, animals) on photos. */
export function registerObjects(program: Command, ctx: CliContext): void {
  const objects = program.command('objects').description('the object model (people, vehicles, animals) on photos');
  objects
    .command('detect')
    .description("the people, vehicles and animals in each image, best first, by the hub's own path (crops, model, threshold); the model loads once")
    .argument('<images...>', 'JPEG, PNG or WebP files')
    .addOption(new Option('--json', 'one JSON line per image: {image, width, height, objects}'))
    .addOption(new Option('--min-score <score>', 'the operating threshold, 0..1 (default: the hub\'s)').argParser(unitInterval))
    .action(async (images: string[], opts: { json?: boolean; minScore?: number }) => {
      const { runObjectsDetect } = await import('../commands/objects-detect.js');
      await ctx.run(() => runObjectsDetect(images, opts, ctx.io));
    });
}
