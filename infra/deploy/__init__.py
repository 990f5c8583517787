"""The AWS deployment, as code: CloudFormation generated from `infra.resources` (the same list the bootstrap
applies), the Lambda package, and the commands that write them (`lorafoundry deploy synth`,
`lorafoundry package lambda`). Nothing here talks to AWS: synthesis and packaging work offline."""
