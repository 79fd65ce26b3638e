// Loads the dashboard's WebAssembly; the module mounts the app itself.
import init from '/pkg/drover_web.js';
init({ module_or_path: '/pkg/drover_web_bg.wasm' });
