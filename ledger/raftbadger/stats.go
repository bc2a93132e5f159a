package raftbadger

import (
	"io/fs"
	"path/filepath"

	"github.com/dgraph-io/badger/v4"
)

// Stats is what a Badger database reports of its files and caches, for
// monitoring.
type Stats struct {
	// LSMBytes and ValueLogBytes are the apparent sizes of the database's
	// table (.sst) and value-log (.vlog) files, as Badger's DB.Size
	// counts them. Badger preallocates value-log files at their full
	// size, sparse on disk: du shows the blocks they use.
	LSMBytes, ValueLogBytes int64
	// Levels are the LSM tree's levels, 0 first.
	Levels []LevelStats
	// BlockCache and IndexCache count lookups in Badger's caches since
	// the database opened; zero when the cache is off.
	BlockCache, IndexCache CacheStats
}

// LevelStats is one level of the LSM tree.
type LevelStats struct {
	Level  int
	Tables int
	// Bytes is the size of the level's tables, and TargetBytes the size
	// above which Badger compacts the level into the next.
	Bytes, TargetBytes int64
}

// CacheStats counts a cache's lookups.
type CacheStats struct {
	Hits, Misses uint64
}

// Stats returns the statistics of the store's database.
func (s *Store) Stats() Stats { return DBStats(s.db) }

// DBStats returns the statistics of db, which must be open. It walks the
// database's directories to size their files (Badger keeps no count of
// its own when its metrics are off, as they are in this module: they are
// process-wide).
func DBStats(db *badger.DB) Stats {
	opts := db.Opts()
	var st Stats
	st.LSMBytes, st.ValueLogBytes = fileSizes(opts.Dir)
	if opts.ValueDir != opts.Dir {
		_, st.ValueLogBytes = fileSizes(opts.ValueDir)
	}
	for _, l := range db.Levels() {
		st.Levels = append(st.Levels, LevelStats{Level: l.Level, Tables: l.NumTables, Bytes: l.Size, TargetBytes: l.TargetSize})
	}
	st.BlockCache = cacheStats(db.BlockCacheMetrics())
	st.IndexCache = cacheStats(db.IndexCacheMetrics())
	return st
}

// fileSizes sums the apparent sizes of the table and value-log files in
// dir. A file removed during the walk (a compaction) is skipped.
func fileSizes(dir string) (lsm, vlog int64) {
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		ext := filepath.Ext(path)
		if ext != ".sst" && ext != ".vlog" {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		if ext == ".sst" {
			lsm += info.Size()
		} else {
			vlog += info.Size()
		}
		return nil
	})
	return lsm, vlog
}

// cacheCounters is Badger's *ristretto.Metrics, whose methods answer 0
// on a nil one (a cache that is off).
type cacheCounters interface {
	Hits() uint64
	Misses() uint64
}

func cacheStats(m cacheCounters) CacheStats {
	return CacheStats{Hits: m.Hits(), Misses: m.Misses()}
}
