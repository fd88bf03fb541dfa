// Mounts the window. Everything it shows comes from the core through ./api.ts.
import './style.css';
import { mount } from 'svelte';
import App from './App.svelte';

// When our code first ran; the start-up benchmark reports it (BENCHMARKS.md).
performance.mark('outpost:script');

const target = document.getElementById('app');
if (!target) throw new Error('#app is missing from index.html');
mount(App, { target });
performance.mark('outpost:mounted');
