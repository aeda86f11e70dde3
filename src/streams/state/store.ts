import { BehaviorSubject, Subject, distinctUntilChanged, scan, type Observable } from 'rxjs';
import { fold, type Action } from './fold.js';
import { Snapshot } from './snapshot.js';

/**
 * Holds the latest snapshot. `snapshot$` emits every new snapshot (and the current one on subscribe);
 * `current` reads it synchronously, which is what every query path does.
 */
export class SnapshotStore {
  readonly #actions = new Subject<Action>();
  readonly #state: BehaviorSubject<Snapshot>;
  /** The snapshot stream: replays the latest to new subscribers, then each change once. */
  readonly snapshot$: Observable<Snapshot>;

  constructor(seed: Snapshot = Snapshot.empty()) {
    this.#state = new BehaviorSubject(seed);
    this.#actions.pipe(scan(fold, seed), distinctUntilChanged()).subscribe(this.#state);
    this.snapshot$ = this.#state.asObservable();
  }

  get current(): Snapshot {
    return this.#state.getValue();
  }

  dispatch(action: Action): void {
    this.#actions.next(action);
  }
}
