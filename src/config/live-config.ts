import type { CameraConfig, Config } from './schema.js';

/**
 * The configuration in force while the hub runs: the file's, with the cameras the household added from the
 * app (CameraRegistry) and whatever `config/set` changed since. The one owner of "which cameras exist
 * now": the face stage, Home Assistant discovery, the camera list, the settings, the state and the gate's
 * camera facts all read it here, so a camera added later is seen by all of them. The caller's options are
 * never written to.
 */
export class LiveConfig {
  #current: Config;
  readonly #fileCameraIds: ReadonlySet<string>;

  /** App-managed cameras whose id the file also uses are left out: the file wins on a clash. */
  constructor(file: Config, appCameras: readonly CameraConfig[] = []) {
    this.#fileCameraIds = new Set(file.cameras.map((c) => c.id));
    const extra = appCameras.filter((c) => !this.#fileCameraIds.has(c.id));
    this.#current = extra.length === 0 ? file : { ...file, cameras: [...file.cameras, ...extra] };
  }

  /** The configuration now (a new object after every change; never mutated in place). */
  get current(): Config {
    return this.#current;
  }

  /** Every camera now, enabled or not. */
  cameras(): readonly CameraConfig[] {
    return this.#current.cameras;
  }

  camera(id: string): CameraConfig | undefined {
    return this.#current.cameras.find((c) => c.id === id);
  }

  /** Ids of the enabled cameras now. */
  enabledCameraIds(): string[] {
    return this.#current.cameras.filter((c) => c.enabled).map((c) => c.id);
  }

  /** The configuration file's camera ids: those cameras are the file's to change, not the app's. */
  get fileCameraIds(): ReadonlySet<string> {
    return this.#fileCameraIds;
  }

  /** Adds a camera, or replaces the one with its id (kept last, as the app added it). */
  putCamera(camera: CameraConfig): void {
    this.#current = { ...this.#current, cameras: [...this.#current.cameras.filter((c) => c.id !== camera.id), camera] };
  }

  removeCamera(id: string): void {
    this.#current = { ...this.#current, cameras: this.#current.cameras.filter((c) => c.id !== id) };
  }

  /** Replaces the whole configuration (settings applied by `config/set`). */
  replace(next: Config): void {
    this.#current = next;
  }
}
