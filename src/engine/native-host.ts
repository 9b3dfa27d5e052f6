// SPDX-License-Identifier: Apache-2.0
// The kernel as the agent's engine host: root checked first, interfaces looked up in this
// network namespace, NativeEngine opened (adopting what is pinned). cli/agent.ts injects it; the
// controller and the agent see only the EngineHost seam (engine-interface.ts).
import { checkPrivileges, interfaceIndex } from './bpffs.js';
import { NativeEngine } from './engine.js';
import type { EngineHost } from './engine-interface.js';
import { addon } from './native.js';

export const nativeEngineHost: EngineHost = {
  preflight: checkPrivileges,
  interfaceIndex: (ifname) => interfaceIndex(ifname, addon().ifNameToIndex),
  open: ({ pinRoot }) => NativeEngine.open({ pinRoot }),
};
