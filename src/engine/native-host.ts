// SPDX-License-Identifier: Apache-2.0
// The kernel as the agent's engine host: root checked first, interfaces looked up in this
// network namespace, NativeEngine opened (adopting what is pinned). cli/agent.ts injects it; the
// controller and the agent see only the EngineHost seam (engine-interface.ts).
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { checkPrivileges, interfaceIndex } from './bpffs.js';
import { NativeEngine } from './engine.js';
import type { EngineHost } from './engine-interface.js';
import { addon } from './native.js';

export const nativeEngineHost: EngineHost = {
  preflight: checkPrivileges,
  interfaceIndex: (ifname) => interfaceIndex(ifname, addon().ifNameToIndex),
  open: ({ pinRoot }) => NativeEngine.open({ pinRoot }),
  removePins,
};

/** Detach every pinned XDP link under `pinRoot`/links, then remove the pin folder; returns the interfaces (pin names). */
function removePins(pinRoot: string): string[] {
  const dir = join(pinRoot, 'links');
  const detached: string[] = [];
  if (existsSync(dir)) {
    const native = addon();
    for (const ifname of readdirSync(dir)) {
      try {
        const fd = native.objGet(join(dir, ifname));
        try {
          native.linkDetach(fd);
        } finally {
          native.closeFd(fd);
        }
        detached.push(ifname);
      } catch {
        // the interface is gone, and the link with it: removing the pin is all there is to do
      }
    }
  }
  rmSync(pinRoot, { recursive: true, force: true });
  return detached;
}
