/**
 * The victim picker of a compaction run: from plain per-segment figures, which segments to compact,
 * in which order, and whether the active segment must be sealed first. Pure, so its rules are
 * tested from tables without a store on disk.
 */

/** What the picker knows of one content segment. */
export interface SegmentStats {
  id: number;
  /** No longer the target of new writes. */
  sealed: boolean;
  /** The segment new writes go to; at most one segment is active. */
  active: boolean;
  /** Emptied by an earlier compaction and waiting for deletion; never picked again. */
  retired: boolean;
  /** Bytes of entries, the file header excluded. */
  totalBytes: number;
  /** Bytes of entries still referenced by a record. */
  liveBytes: number;
  /** Bytes of entries no longer referenced (`totalBytes - liveBytes`). */
  deadBytes: number;
}

export interface PickOptions {
  /** Pick every segment holding dead bytes, whatever its dead ratio. */
  force: boolean;
  /** A segment qualifies when its dead ratio is strictly above this. */
  minSegmentDeadRatio: number;
  /**
   * Victims an interrupted run left unfinished: they qualify with any dead bytes, so a resumed run
   * finishes what the interrupted one began even if the threshold changed meanwhile.
   */
  resume: ReadonlySet<number>;
}

export interface VictimPlan {
  /** Segment ids to compact, most dead first (ties keep the input order). */
  victims: number[];
  /** The active segment is among the victims and must be sealed before anything is copied. */
  sealActiveFirst: boolean;
  /** Sum of the victims' live bytes: what the run will copy. */
  bytesToCopy: number;
}

function deadRatio(s: SegmentStats): number {
  return s.deadBytes / Math.max(1, s.totalBytes);
}

export function pickVictims(segments: readonly SegmentStats[], o: PickOptions): VictimPlan {
  // A segment with nothing live is always worth its done marker: it is then deleted outright.
  const eligible = (s: SegmentStats): boolean =>
    !s.retired &&
    (s.liveBytes === 0 ||
      (s.deadBytes > 0 && (o.force || o.resume.has(s.id) || deadRatio(s) > o.minSegmentDeadRatio)));
  // The active segment qualifies like any other, but it is sealed (inside the run, after the
  // resource checks) before anything is copied, so compaction never competes with appends.
  const active = segments.find((s) => s.active);
  const sealActiveFirst =
    active !== undefined && active.totalBytes > 0 && active.deadBytes > 0 && eligible(active);
  const victims = segments
    .filter(
      (s) =>
        (s.sealed || (sealActiveFirst && s === active)) &&
        s.totalBytes > 0 &&
        eligible(s) &&
        (s !== active || sealActiveFirst),
    )
    .sort((a, b) => deadRatio(b) - deadRatio(a));
  return {
    victims: victims.map((s) => s.id),
    sealActiveFirst,
    bytesToCopy: victims.reduce((n, s) => n + s.liveBytes, 0),
  };
}
