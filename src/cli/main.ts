#!/usr/bin/env node
import { Command, CommanderError, Option } from 'commander';
import { DEFAULT_HOST, DEFAULT_PORT } from '../server/index.js';
import type { BenchOptions } from './commands/bench.js';
import type { CompactCliOptions } from './commands/compact.js';
import type { VerifyCliOptions } from './commands/verify.js';
import type { BackupCliOptions } from './commands/backup.js';
import type { ExportOptions } from './commands/export.js';
import type { ImportOptions } from './commands/import.js';
import type { RecallCliOptions } from './commands/recall.js';
import type { SpacesCliOptions } from './commands/spaces.js';
import type { StatsOptions } from './commands/stats.js';
import type { ServeOptions } from './commands/serve.js';
import {
  CliError,
  DEFAULT_DATA_DIR,
  EXIT_ERROR,
  formatError,
  packageVersion,
  parseIntOption,
  parseNumberOption,
} from './common.js';

const dataOption = (): Option =>
  new Option('-d, --data <dir>', 'store directory').env('WARMSTORE_DATA').default(DEFAULT_DATA_DIR);
const urlOption = (): Option =>
  new Option('--url <url>', 'work through a running `warmstore serve` at this URL instead of --data');
const apiKeyOption = (): Option =>
  new Option('--api-key <key>', 'API key for --url (sent as a bearer token)').env('WARMSTORE_API_KEY');

/**
 * `--url` replaces `--data`: naming both on the command line is a mistake worth stopping. A data
 * directory from WARMSTORE_DATA is only a default and gives way.
 */
function checkRemote(command: Command): void {
  const opts = command.opts<{ url?: string; apiKey?: string }>();
  if (opts.url === undefined) {
    if (command.getOptionValueSource('apiKey') === 'cli') {
      throw new CliError('INVALID_INPUT', '--api-key needs --url');
    }
    return;
  }
  if (command.getOptionValueSource('data') === 'cli') {
    throw new CliError(
      'INVALID_INPUT',
      '--url and --data are exclusive: one names a server, the other a directory',
    );
  }
}

const jsonOption = (): Option => new Option('--json', 'print one JSON object on stdout (for scripts)');
const spaceOption = (what: string): Option => new Option('--space <name>', what);
const dimensionOption = (): Option =>
  new Option('--dimension <n>', 'embedding dimension, used when a new store is created').argParser(
    parseIntOption(1, 65536),
  );

function buildProgram(): Command {
  const program = new Command()
    .name('warmstore')
    .description('Embedded storage engine for AI memories, with online compaction.')
    .version(packageVersion())
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();

  program
    .command('serve')
    .description('run the HTTP server (graceful shutdown on SIGTERM/SIGINT; a second signal exits at once)')
    .addOption(dataOption())
    .addOption(
      new Option('-p, --port <n>', 'TCP port (0 picks a free one)')
        .env('WARMSTORE_PORT')
        .default(DEFAULT_PORT)
        .argParser(parseIntOption(0, 65535)),
    )
    .addOption(
      new Option('-H, --host <host>', 'interface to listen on').env('WARMSTORE_HOST').default(DEFAULT_HOST),
    )
    .addOption(dimensionOption())
    .addOption(
      new Option('--log-level <level>', 'pino log level')
        .env('WARMSTORE_LOG_LEVEL')
        .choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
        .default('info'),
    )
    .addOption(
      new Option(
        '--api-keys <file>',
        'JSON file of API keys: [{ "key", "spaces": ["*" or names], "access": "read" | "write" }] ' +
          '(WARMSTORE_API_KEY adds one key allowed everything)',
      ),
    )
    .addOption(new Option('--insecure', 'allow listening beyond loopback without API keys'))
    .addOption(new Option('--tls-cert <file>', 'PEM certificate: serve HTTPS (with --tls-key)'))
    .addOption(new Option('--tls-key <file>', 'PEM private key of --tls-cert'))
    .addOption(
      new Option('--max-batch-items <n>', 'most items of one batch request (413 beyond)').argParser(
        parseIntOption(1, 1_000_000),
      ),
    )
    .addOption(
      new Option('--batch-body-limit <bytes>', 'largest batch request body (413 beyond)').argParser(
        parseIntOption(1024),
      ),
    )
    .addOption(
      new Option('--segment-bytes <n>', 'target size of a content segment (default 64 MiB)').argParser(
        parseIntOption(4096),
      ),
    )
    .addOption(
      new Option(
        '--backup-dir <dir>',
        'directory for backups made through POST /api/v1/maintenance/backup (disabled without it)',
      ).env('WARMSTORE_BACKUP_DIR'),
    )
    .addOption(
      new Option(
        '--ann-min-memories <n>',
        'memories from which recall uses the approximate index (default 20000; below, it scans exactly)',
      ).argParser(parseIntOption(0, 2 ** 32)),
    )
    .action(async (opts: ServeOptions) => {
      const { serve } = await import('./commands/serve.js');
      await serve(opts);
    });

  program
    .command('stats')
    .description('print content storage statistics')
    .addOption(dataOption())
    .addOption(urlOption())
    .addOption(apiKeyOption())
    .addOption(jsonOption())
    .action(async (opts: StatsOptions, command: Command) => {
      checkRemote(command);
      const { stats } = await import('./commands/stats.js');
      await stats(opts);
    });

  program
    .command('compact')
    .description('compact content segments now (Ctrl-C aborts safely)')
    .addOption(dataOption())
    .addOption(urlOption())
    .addOption(apiKeyOption())
    .option('--force', 'compact every sealed segment holding dead bytes, whatever its ratio')
    .addOption(jsonOption())
    .action(async (opts: CompactCliOptions, command: Command) => {
      checkRemote(command);
      const { compact } = await import('./commands/compact.js');
      await compact(opts);
    });

  program
    .command('verify')
    .description('check every record and content checksum and the garbage counts; exit 1 on problems')
    .addOption(dataOption())
    .addOption(urlOption())
    .addOption(apiKeyOption())
    .addOption(jsonOption())
    .action(async (opts: VerifyCliOptions, command: Command) => {
      checkRemote(command);
      const { verify } = await import('./commands/verify.js');
      await verify(opts);
    });

  program
    .command('backup')
    .description(
      'copy the store, consistent as of one moment, into an empty directory; with --url, the ' +
        'server backs its own store up into <dir> as a name under its --backup-dir',
    )
    .argument('<dir>', 'backup directory: absent or empty, outside the store (with --url: a name)')
    .addOption(dataOption())
    .addOption(urlOption())
    .addOption(apiKeyOption())
    .option('--no-link', 'copy sealed segments too instead of hard-linking them (for another disk)')
    .addOption(jsonOption())
    .action(async (dir: string, opts: BackupCliOptions, command: Command) => {
      checkRemote(command);
      const { backup } = await import('./commands/backup.js');
      await backup(dir, opts);
    });

  program
    .command('import')
    .description('import memories from a JSON Lines file ("-" for stdin); puts replace existing ids')
    .argument('<file>', 'JSON Lines file, one memory per line')
    .addOption(dataOption())
    .addOption(urlOption())
    .addOption(apiKeyOption())
    .addOption(jsonOption())
    .addOption(dimensionOption())
    .addOption(
      new Option('--batch <n>', 'records per durable batch')
        .default(1000)
        .argParser(parseIntOption(1, 1_000_000)),
    )
    .addOption(
      spaceOption("put every record in this memory space (default: each line's own space, else 'default')"),
    )
    .action(async (file: string, opts: ImportOptions, command: Command) => {
      checkRemote(command);
      const { importJsonl } = await import('./commands/import.js');
      await importJsonl(file, opts);
    });

  program
    .command('export')
    .description('export every memory as JSON Lines to a file, or to stdout')
    .argument('[file]', 'output file; stdout when omitted or "-"')
    .addOption(dataOption())
    .addOption(urlOption())
    .addOption(apiKeyOption())
    .addOption(new Option('--json', 'print a JSON summary on stdout (with a file only)'))
    .addOption(
      spaceOption('only this memory space (default: every space; with --url, every space the key covers)'),
    )
    .action(async (file: string | undefined, opts: ExportOptions, command: Command) => {
      checkRemote(command);
      if (opts.json && (file === undefined || file === '-')) {
        throw new CliError('INVALID_INPUT', '--json needs an output file: stdout carries the export');
      }
      const { exportJsonl } = await import('./commands/export.js');
      await exportJsonl(file, opts);
    });

  program
    .command('recall')
    .description('print the memories most similar to an embedding, or to a stored memory (--like)')
    .argument('[embedding]', 'a JSON array of numbers, or base64 of little-endian float32')
    .option('--like <id>', 'use the embedding of this stored memory')
    .addOption(new Option('-k, --k <n>', 'results at most').default(10).argParser(parseIntOption(1, 10_000)))
    .addOption(
      new Option('--min-score <x>', 'drop results below this cosine similarity').argParser(parseNumberOption),
    )
    .addOption(spaceOption("the memory space to recall from, and to find --like in (default: 'default')"))
    .addOption(
      new Option(
        '--filter <json>',
        'only memories whose metadata fall in these ranges, e.g. \'{"confidence":{"gte":0.5}}\' ' +
          '(fields: confidence, activation, decayRate, createdAt, lastAccess, accessCount; gt, gte, lt, lte)',
      ),
    )
    .addOption(new Option('--exact', 'scan every vector of the space instead of using an index'))
    .addOption(dataOption())
    .addOption(urlOption())
    .addOption(apiKeyOption())
    .addOption(jsonOption())
    .action(async (embedding: string | undefined, opts: RecallCliOptions, command: Command) => {
      checkRemote(command);
      const { recall } = await import('./commands/recall.js');
      await recall(embedding, opts);
    });

  program
    .command('spaces')
    .description('list the memory spaces and their sizes, or delete one with --delete')
    .addOption(new Option('--delete <name>', 'delete this space and every memory in it'))
    .addOption(dataOption())
    .addOption(urlOption())
    .addOption(apiKeyOption())
    .addOption(jsonOption())
    .action(async (opts: SpacesCliOptions, command: Command) => {
      checkRemote(command);
      const { spaces } = await import('./commands/spaces.js');
      await spaces(opts);
    });

  program
    .command('bench')
    .description('quick in-process put/get benchmark on a fresh temporary store (ops/s, p50, p99)')
    .addOption(
      new Option('-d, --data <dir>', 'directory to create the temporary store in').env('WARMSTORE_DATA'),
    )
    .addOption(new Option('--count <n>', 'records').default(10_000).argParser(parseIntOption(1)))
    .addOption(
      new Option('--dimension <n>', 'embedding dimension').default(768).argParser(parseIntOption(1, 65536)),
    )
    .addOption(
      new Option('--content-bytes <n>', 'content size per record').default(1024).argParser(parseIntOption(0)),
    )
    .addOption(
      new Option('--concurrency <n>', 'operations in flight at once')
        .default(1)
        .argParser(parseIntOption(1, 4096)),
    )
    .addOption(jsonOption())
    .action(async (opts: BenchOptions) => {
      const { bench } = await import('./commands/bench.js');
      await bench(opts);
    });

  return program;
}

async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // Commander has printed its message (or the help/version) already.
      process.exitCode = err.exitCode === 0 ? 0 : EXIT_ERROR;
      return;
    }
    process.stderr.write(`${formatError(err)}\n`);
    process.exitCode = err instanceof CliError ? err.exitCode : EXIT_ERROR;
  }
}

await main(process.argv);
