// Replication to secondaries: zone transfers (AXFR/IXFR, transfer.ts), SOA serials that move with a zone's content
// (serial.ts), NOTIFY (notify.ts) and TSIG signatures (tsig.ts, signed.ts). Above the DNS core, below the transports.
export { ZoneSerials, type ZoneVersion } from './serial.js';
export { createTransfer, type HandleTransfer, type TransferOptions } from './transfer.js';
export { withTsig } from './signed.js';
export { Notifier, watchZones, type NotifyTarget } from './notify.js';
export type { TsigKey, TsigAlgorithm } from './tsig.js';
