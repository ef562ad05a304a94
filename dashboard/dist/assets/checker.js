import{_ as l}from"./index.js";const e=()=>l(()=>import("./checker-wasm.js"),[]);let o=null;function a(t=e){return o??=t().catch(r=>{throw o=null,r}),o}export{a as l};
