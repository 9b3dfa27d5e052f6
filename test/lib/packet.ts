// SPDX-License-Identifier: Apache-2.0
// The frame builder lives with the engine (src/engine/frame.ts); tests import it from here.
export * from '../../src/engine/frame.js';
