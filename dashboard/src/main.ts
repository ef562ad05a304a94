import { mount } from 'svelte';
import './app.css';
import App from './App.svelte';
import { route } from './stores/route.svelte';

route.start();
mount(App, { target: document.getElementById('app')! });
