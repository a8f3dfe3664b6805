import { invalid } from '../errors.js';
import {
  FORMAT_VERSION,
  findMigration,
  registerMigration as registerInternal,
  type FileKind,
  type Migration,
} from '../format/header.js';
// The shipped migrations register themselves when their module loads; load it here so a test's
// migration is checked against them even when the store has not been imported yet.
import '../records/migrate.js';

/**
 * Registers a format migration for this process and returns the function that unregisters it.
 * Meant for tests that fabricate a file at an older format version and check that a store opens
 * it once a migration exists. The migrations warmstore ships are registered already and cannot be
 * replaced: replacing one would change how real stores open, and unregistering the replacement
 * would leave no migration at all.
 */
export function registerMigration(migration: Migration): () => void {
  if (typeof migration !== 'object' || migration === null) throw invalid('migration', 'must be an object');
  const { kind, fromVersion, toVersion, migrateFields, migrateBody } = migration;
  if (typeof kind !== 'string' || !Object.hasOwn(FORMAT_VERSION, kind)) {
    throw invalid('migration.kind', `must be one of ${Object.keys(FORMAT_VERSION).join(', ')}`);
  }
  const current = FORMAT_VERSION[kind as FileKind];
  if (!Number.isInteger(fromVersion) || fromVersion < 0 || fromVersion >= current) {
    throw invalid('migration.fromVersion', `must be an integer in [0, ${current - 1}] for ${kind}`);
  }
  if (!Number.isInteger(toVersion) || toVersion <= fromVersion || toVersion > current) {
    throw invalid('migration.toVersion', `must be an integer in [fromVersion + 1, ${current}] for ${kind}`);
  }
  if (typeof migrateFields !== 'function') throw invalid('migration.migrateFields', 'must be a function');
  if (migrateBody !== undefined && typeof migrateBody !== 'function')
    throw invalid('migration.migrateBody', 'must be a function');
  if (findMigration(kind, fromVersion) !== undefined) {
    throw invalid(
      'migration.fromVersion',
      `a migration of ${kind} from version ${fromVersion} is registered already`,
    );
  }
  return registerInternal(migration);
}
